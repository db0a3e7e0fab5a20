"""Workflow steps as data: which step a vehicle is due to run, since when, how many
attempts it took and the last error. The retry policy and the sweeper read this, never
the broker's redelivery count, so a lost or repeated message changes no decision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from store.db import Database
from store.models import ConnectedVehicle, utcnow
from workflows.dispatch import note_step
from workflows.vehicles import lock

__all__ = ["Step", "clear", "record_failure", "redrive", "schedule"]


class Step(StrEnum):
    start_link = "start_link"  # make the provider's link session (Enode)
    validate = "validate"  # exchange the code, validate the account, decide
    revoke = "revoke"  # give the access back at the provider, then `removed`
    refresh = "refresh"  # new tokens ahead of expiry (authorized vehicles)
    # Read the car's data into its snapshot. Not a vehicle's `step` (it runs beside a
    # refresh): its request lives on the snapshot row (workflows.data).
    fetch = "fetch"


def schedule(vehicle: ConnectedVehicle, step: Step) -> None:
    """Make `step` due now, with a fresh attempt count (in the caller's transaction); it
    is enqueued when that transaction commits (workflows.dispatch)."""
    vehicle.step = step.value
    vehicle.step_due_at = utcnow()
    vehicle.attempts = 0
    vehicle.last_error = None
    note_step(vehicle)


def redrive(vehicle: ConnectedVehicle, now: datetime | None = None) -> None:
    """Enqueue the vehicle's step again after this commit (its message was lost, or its
    worker died); it is not due again before another stall deadline."""
    assert vehicle.step is not None
    vehicle.step_due_at = now or utcnow()
    note_step(vehicle)


def clear(vehicle: ConnectedVehicle) -> None:
    """Nothing is due any more (the step is done, or the vehicle left `pending`)."""
    vehicle.step = None
    vehicle.step_due_at = None


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
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        if vehicle is None:
            return None
        vehicle.attempts = (vehicle.attempts or 0) + 1
        vehicle.last_error = error[:500]
        delay = None
        if vehicle.attempts < max_attempts:
            delay = delay_for(vehicle.attempts)
            vehicle.step_due_at = utcnow() + timedelta(seconds=delay)
        session.commit()
        return delay
