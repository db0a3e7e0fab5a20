"""The operators' audit (SPEC §8): every operator action (a re-drive, bulk or not,
forced or not; unmark; key and secret rotations; prune) is a row of
``operator_actions`` and a log line (JSON, its fields under ``audit``), with who (the
Flower login, or the operating-system user of the command), when, what, the reason and
the counts. Written in the transaction of the action itself where there is one, so that
no action goes unrecorded and no record tells of an action that rolled back."""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, event, select
from sqlalchemy.orm import Session

from store.db import Database
from store.models import OperatorAction

__all__ = ["Action", "Who", "actions", "record", "record_now"]

log = logging.getLogger(__name__)


class Action(StrEnum):
    redrive = "redrive"
    bulk_redrive = "bulk_redrive"
    bulk_stop = "bulk_stop"
    bulk_resume = "bulk_resume"
    unmark = "unmark"
    keys_rotate = "keys_rotate"
    client_rotate_secret = "client_rotate_secret"
    prune = "prune"


@dataclass(frozen=True)
class Who:
    """An operator: their name, and the way they came (cli, flower, ops)."""

    actor: str
    via: str

    @classmethod
    def os_user(cls) -> Who:
        """The command's operating-system user (as `sudo` tells, when it ran the tool)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = f"uid {os.getuid()}"
        sudo = os.environ.get("SUDO_USER")
        return cls(f"{sudo} (as {user})" if sudo and sudo != user else user, "cli")


def record(
    session: Session,
    who: Who,
    action: Action,
    *,
    vehicle_id: str | None = None,
    run_id: str | None = None,
    reason: str | None = None,
    filter: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
    outcome: str | None = None,
) -> OperatorAction:
    """Add the action's row to `session` (committed with it) and log it."""
    row = OperatorAction(
        actor=who.actor[:200],
        via=who.via,
        action=action.value,
        vehicle_id=vehicle_id,
        run_id=run_id,
        reason=reason,
        filter=filter,
        counts=counts,
        outcome=outcome,
    )
    session.add(row)
    fields = {
        "actor": row.actor,
        "via": row.via,
        "action": row.action,
        "vehicle_id": vehicle_id,
        "run_id": run_id,
        "reason": reason,
        "filter": filter,
        "counts": counts,
        "outcome": outcome,
    }
    line = (
        "operator %s (%s): %s%s%s",
        row.actor,
        row.via,
        row.action,
        f" {vehicle_id or run_id}" if vehicle_id or run_id else "",
        f": {outcome}" if outcome else "",
    )
    extra = {"audit": {k: v for k, v in fields.items() if v is not None}}

    def committed(_: Session) -> None:  # logged once the action is done, never before
        log.info(*line, extra=extra)

    event.listen(session, "after_commit", committed, once=True)
    return row


def record_now(db: Database, who: Who, action: Action, **fields: Any) -> None:
    """An action that has no transaction of its own to ride in (or one that rolled back:
    a refusal is recorded too)."""
    with db.session() as session:
        record(session, who, action, **fields)
        session.commit()


def actions(
    *,
    vehicle_id: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> Select[OperatorAction]:
    """The newest actions first (on one vehicle, of one run, since a moment)."""
    query = select(OperatorAction)
    if vehicle_id is not None:
        query = query.where(OperatorAction.vehicle_id == vehicle_id)
    if run_id is not None:
        query = query.where(OperatorAction.run_id == run_id)
    if since is not None:
        query = query.where(OperatorAction.at >= since)
    return query.order_by(OperatorAction.id.desc()).limit(limit)
