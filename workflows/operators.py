"""What an operator does to one vehicle, audited: a re-drive (forced or not), and taking
the unreadable mark off a row mended by hand. The operators' command, the ops endpoint
and Flower call these; each action is a row of the audit (workflows.audit), in the
transaction of the action, and a refusal is recorded too, with its words."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle
from workflows import authorization, unreadable
from workflows.audit import Action, Who, record, record_now
from workflows.errors import DomainError, ErrorCode

__all__ = ["redrive", "redrive_in", "unmark"]


def redrive_in(
    session: Session,
    settings: Settings,
    who: Who,
    vehicle_id: str,
    *,
    force: bool = False,
    reason: str | None = None,
) -> ConnectedVehicle:
    """The re-drive (workflows.authorization.redrive) with its audit row, committed
    together; NotRedrivable says why not, in an operator's words."""
    record(
        session,
        who,
        Action.redrive,
        vehicle_id=vehicle_id,
        reason=reason,
        outcome="forced" if force else None,
    )
    return authorization.redrive(session, settings, vehicle_id, force=force)


def redrive(
    db: Database,
    settings: Settings,
    who: Who,
    vehicle_id: str,
    *,
    force: bool = False,
    reason: str | None = None,
) -> ConnectedVehicle:
    """:func:`redrive_in` in a transaction of its own (a row that cannot be read is
    marked); a refusal is audited with its words, then raised."""
    try:
        return unreadable.run(
            db,
            lambda session: redrive_in(
                session, settings, who, vehicle_id, force=force, reason=reason
            ),
        )
    except DomainError as exc:
        refused(db, who, vehicle_id, exc, force=force, reason=reason)
        raise


def refused(
    db: Database,
    who: Who,
    vehicle_id: str,
    exc: DomainError,
    *,
    force: bool = False,
    reason: str | None = None,
) -> None:
    """A re-drive that was refused, audited (a vehicle that does not exist is not)."""
    if exc.code is ErrorCode.CONNECTED_VEHICLE_NOT_FOUND:
        return
    outcome = f"refused{' (forced)' if force else ''}: {exc.message}"
    record_now(db, who, Action.redrive, vehicle_id=vehicle_id, reason=reason, outcome=outcome)


def unmark(db: Database, who: Who, vehicle_id: str, *, reason: str | None = None) -> bool:
    """The unreadable mark taken off (an operator mended the row); False: no such
    vehicle."""
    with db.session() as session:
        done = session.execute(
            update(ConnectedVehicle)
            .where(ConnectedVehicle.id == vehicle_id)
            .values(unreadable_at=None, unreadable_reason=None)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            return False
        record(session, who, Action.unmark, vehicle_id=vehicle_id, reason=reason)
        session.commit()
    return True
