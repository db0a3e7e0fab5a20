"""Workflow steps as data: which step a vehicle is due to run, since when, how many
attempts it took and the last error. The retry policy and the sweeper read this, never
the broker's redelivery count, so a lost or repeated message changes no decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from store.models import ConnectedVehicle, utcnow
from workflows.dispatch import note_step

__all__ = [
    "Failed",
    "Outcome",
    "Step",
    "WorkflowFailed",
    "clear",
    "redrive",
    "schedule",
]


class Step(StrEnum):
    start_link = "start_link"  # make the provider's link session (Enode)
    validate = "validate"  # exchange the code, validate the account, decide
    revoke = "revoke"  # give the access back at the provider, then `removed`
    refresh = "refresh"  # new tokens ahead of expiry (authorized vehicles)
    # Read the car's data into its snapshot. Not a vehicle's `step` (it runs beside a
    # refresh): its request lives on the snapshot row (workflows.data).
    fetch = "fetch"


@dataclass(frozen=True)
class Failed:
    """A step's outcome: this run failed its vehicle with `code` (the task then ends
    FAILURE, for Flower's Failed filter and its Re-drive button)."""

    code: str


class WorkflowFailed(Exception):
    """The step's vehicle ended `failed`. Raised after everything was committed, so that
    the task ends FAILURE with the vehicle's id and code (Flower's Failed filter finds
    it; its Re-drive button acts on it): the message is acked like any other, nothing is
    retried or redelivered."""

    def __init__(self, vehicle_id: str, code: str | None) -> None:
        super().__init__(vehicle_id, code)
        self.vehicle_id = vehicle_id
        self.code = code

    def __str__(self) -> str:
        return f"vehicle {self.vehicle_id} failed: {self.code}"


# What a step's run (or its end after the last attempt) tells its task: None, the step
# is done or goes on (another attempt, another run).
Outcome = Failed | None


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
