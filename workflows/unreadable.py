"""One row the service cannot read fails alone (SPEC §6). A vehicle whose secrets do not
decrypt with CV_SECRET_KEY (written under another key, or corrupt) is marked: a log line
with its id and why, `unreadable_at` set (operators list them: `cv vehicles list
--unreadable`), its step cleared. The periodic passes skip a marked row, and the sweep,
the lists and every other job go on around it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from store.crypto import SecretKeyError
from store.db import DATABASE_AWAY, Database
from store.models import ConnectedVehicle, utcnow
from workflows.errors import DomainError, ErrorCode

__all__ = ["UNREADABLE", "Unreadable", "alone", "mark", "mark_now", "reading", "run"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Unreadable(DomainError):
    """A caller met a row it cannot read: CONNECTED_VEHICLE_UNREADABLE. Whoever runs the
    unit of work marks the row once its transaction has ended (`mark_now`): the failed
    read may hold the row's lock, so marking it from inside would wait on itself."""

    def __init__(self, vehicle_id: str, cause: Exception) -> None:
        super().__init__(ErrorCode.CONNECTED_VEHICLE_UNREADABLE)
        self.vehicle_id = vehicle_id
        self.cause = cause


# What makes a row unreadable (not a passing fault: reading it again fails again).
UNREADABLE: tuple[type[Exception], ...] = (SecretKeyError, Unreadable)


@contextmanager
def reading(vehicle_id: str) -> Iterator[None]:
    """Around a read of one vehicle: a row that does not decrypt is `Unreadable`."""
    try:
        yield
    except SecretKeyError as exc:
        raise Unreadable(vehicle_id, exc) from exc


def mark(session: Session, vehicle_id: str, exc: Exception) -> None:
    """Mark the row in the caller's transaction (a plain UPDATE: the row itself cannot
    be loaded). The reason names the error, never a value of the row."""
    if isinstance(exc, Unreadable):
        exc = exc.cause
    reason = f"{type(exc).__name__}: {exc}"[:500]
    log.error("vehicle %s cannot be read (%s): marked, left alone", vehicle_id, reason)
    session.execute(
        update(ConnectedVehicle)
        .where(ConnectedVehicle.id == vehicle_id)
        .values(
            # since when: the first time it was met (every reader that meets it marks it)
            unreadable_at=func.coalesce(ConnectedVehicle.unreadable_at, utcnow()),
            unreadable_reason=reason,
            step=None,
            step_due_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def run(db: Database, work: Callable[[Session], T], *, tries: int = 2) -> T:
    """`db.run(work)` (a database blip before any commit: run again); a vehicle that
    cannot be read is marked once the work's transaction has ended, and `Unreadable`
    goes on up. What every caller outside a job uses: the API, the callback, the
    operators' tools."""
    try:
        return db.run(work, tries=tries)
    except Unreadable as exc:
        try:
            mark_now(db, exc.vehicle_id, exc.cause)
        except DATABASE_AWAY:  # marked by the next reader, or the next job
            log.warning("vehicle %s cannot be read; not marked (database away)", exc.vehicle_id)
        raise


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
