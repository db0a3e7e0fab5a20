"""One vehicle under its row lock, in one transaction, with its machine: the ground a
workflow step stands on (workflows.session builds on it).

    with locked(db, vehicle_id, Status.pending, may="claim") as v:
        if v is None: return          # gone, not pending, or may not claim
        v.fire("claim", owner=…)      # the transition, its fields and its event
                                      # … committed when the block ends
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from providers import Adapter, Tokens
from store.db import Database
from store.models import ConnectedVehicle, utcnow
from workflows import attempts
from workflows.machine import Lifecycle, Stage, Status
from workflows.vehicles import lock

__all__ = ["Locked", "Owner", "fire", "locked", "record_failure", "tokens_of"]


class Owner(Protocol):
    """What a Locked reports to: the run's VehicleSession (workflows.session)."""

    tokens: Tokens | None

    def adapter_for(self, v: Locked) -> Adapter: ...


def tokens_of(vehicle: ConnectedVehicle) -> Tokens | None:
    if not vehicle.access_token:
        return None
    return Tokens(vehicle.access_token, vehicle.refresh_token, vehicle.token_expires_at)


@contextmanager
def locked(
    db: Database,
    vehicle_id: str,
    *states: Status | Stage,
    may: str | None = None,
    owner: Owner | None = None,
) -> Iterator[Locked | None]:
    """The vehicle under its lock, in a transaction that commits when the block ends;
    None when it is gone, not in one of `states`, or may not fire `may`."""
    with db.session() as session:
        row = lock(session, vehicle_id)
        if row is not None:
            attempts.began_in(row)
        v = Locked(owner, session, row) if row is not None else None
        if v is not None and ((states and not v.is_(*states)) or (may and not v.may(may))):
            v = None
        yield v
        if v is not None:
            attempts.ended_in(session, v.row)
        elif row is not None:
            attempts.superseded(row)
        session.commit()


def record_failure(
    db: Database,
    vehicle_id: str,
    error: str,
    *,
    max_attempts: int,
    delay_for: Callable[[int], float],
) -> float | None:
    """Count a failed attempt of the vehicle's step and keep its error. Returns the delay
    before the next attempt (the step is then due at that time), or None when the
    attempts are spent."""
    with locked(db, vehicle_id) as v:
        if v is None:
            return None
        row = v.row
        row.attempts = (row.attempts or 0) + 1
        row.last_error = error[:500]
        spent = row.attempts >= max_attempts
        attempts.write(v.session, row, error, spent=spent)
        if spent:
            return None
        delay = delay_for(row.attempts)
        row.step_due_at = utcnow() + timedelta(seconds=delay)
        return delay


def fire(db: Database, vehicle_id: str, trigger: str, **kwargs: object) -> bool:
    """Fire `trigger` in a transaction of its own when the vehicle's machine allows it;
    False when it does not (decided already, say)."""
    with locked(db, vehicle_id, may=trigger) as v:
        if v is not None:
            v.fire(trigger, **kwargs)
        return v is not None


class Locked:
    """One vehicle under its row lock, in the transaction of a ``locked`` block."""

    def __init__(self, owner: Owner | None, session: Session, row: ConnectedVehicle) -> None:
        self.owner = owner
        self.session = session
        self.row = row
        self.machine = Lifecycle(session, row)

    def is_(self, *states: Status | Stage) -> bool:
        return self.machine.is_(*states)

    def may(self, trigger: str) -> bool:
        return self.machine.may(trigger)

    def fire(self, trigger: str, **kwargs: object) -> None:
        """The machine's transition, its callbacks' fields and its event (IllegalTransition
        when the table has no such move)."""
        self.machine.trigger_event(trigger, **kwargs)

    @property
    def adapter(self) -> Adapter:
        assert self.owner is not None, "a provider is called through a VehicleSession"
        return self.owner.adapter_for(self)

    def tokens(self) -> Tokens | None:
        """The tokens held (decrypted now), known to the session from here on."""
        tokens = tokens_of(self.row)
        if self.owner is not None:
            self.owner.tokens = tokens
        return tokens
