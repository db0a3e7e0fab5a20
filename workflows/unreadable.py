"""One row the service cannot read fails alone (SPEC §6). A vehicle whose secrets do not
decrypt with CV_SECRET_KEY (written under another key, or corrupt) is marked: a log line
with its id and why, `unreadable_at` set (operators list them: `cv vehicles list
--unreadable`), its step cleared. The periodic passes skip a marked row, and the sweep,
the lists and every other job go on around it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session

from store.crypto import SecretKeyError
from store.db import Database
from store.models import ConnectedVehicle, utcnow

__all__ = ["UNREADABLE", "alone", "mark", "mark_now"]

log = logging.getLogger(__name__)

# What makes a row unreadable (not a passing fault: reading it again fails again).
UNREADABLE: tuple[type[Exception], ...] = (SecretKeyError,)


def mark(session: Session, vehicle_id: str, exc: Exception) -> None:
    """Mark the row in the caller's transaction (a plain UPDATE: the row itself cannot
    be loaded). The reason names the error, never a value of the row."""
    reason = f"{type(exc).__name__}: {exc}"[:500]
    log.error("vehicle %s cannot be read (%s): marked, left alone", vehicle_id, reason)
    session.execute(
        update(ConnectedVehicle)
        .where(ConnectedVehicle.id == vehicle_id)
        .values(unreadable_at=utcnow(), unreadable_reason=reason, step=None, step_due_at=None)
        .execution_options(synchronize_session=False)
    )


def mark_now(db: Database, vehicle_id: str, exc: Exception) -> None:
    """`mark` in a transaction of its own (a job that could not read its vehicle)."""
    with db.session() as session:
        mark(session, vehicle_id, exc)
        session.commit()


def alone(session: Session, vehicle_id: str, action: Callable[[], None]) -> bool:
    """Run `action` on one row inside a savepoint: a row that cannot be read is rolled
    back and marked, and the caller's pass goes on. False when it was marked."""
    try:
        with session.begin_nested():
            action()
        return True
    except UNREADABLE as exc:
        mark(session, vehicle_id, exc)
        return False
