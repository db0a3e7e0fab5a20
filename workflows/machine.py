"""The connected vehicle's life as a `transitions` state machine.

States are an Enum, transitions a table of data. A :class:`Lifecycle` wraps one row that
the caller holds locked; its callbacks only set fields and add the outbox event of the
change, in the caller's transaction. An illegal trigger raises :class:`IllegalTransition`,
never returns quietly.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session
from transitions import EventData, Machine, MachineError

from store.models import ConnectedVehicle, utcnow
from workflows import steps
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event

# transitions logs every callback it runs at INFO: several lines per change in a worker
# at INFO, and CPU spent formatting them. Our own events say what changed.
logging.getLogger("transitions").setLevel(logging.WARNING)

__all__ = ["TRANSITIONS", "IllegalTransition", "Lifecycle", "Status", "TableMachine"]


class Status(StrEnum):
    pending = "pending"
    authorized = "authorized"
    failed = "failed"
    pending_removal = "pending_removal"
    removed = "removed"
    deauthorized = "deauthorized"


S = Status
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "authorize", "source": S.pending, "dest": S.authorized},
    {"trigger": "fail", "source": S.pending, "dest": S.failed},
    {
        "trigger": "retry",
        "source": S.failed,
        "dest": S.pending,
        # Not `may_retry`: transitions names its own "may the trigger fire?" check so.
        "conditions": "retry_allowed",
    },
    {"trigger": "request_removal", "source": S.authorized, "dest": S.pending_removal},
    {"trigger": "complete_removal", "source": S.pending_removal, "dest": S.removed},
    {"trigger": "deauthorize", "source": S.authorized, "dest": S.deauthorized},
    {
        # The user consents again (reauthorizeConnectedVehicle): same id, a new flow.
        "trigger": "reauthorize",
        "source": [S.deauthorized, S.failed],
        "dest": S.pending,
        "after": "forget_consent",
    },
    {
        "trigger": "remove",
        "source": [S.pending, S.failed, S.deauthorized],
        "dest": S.removed,
    },
]


class IllegalTransition(DomainError):
    def __init__(self, trigger: str, status: str) -> None:
        super().__init__(
            ErrorCode.ILLEGAL_TRANSITION,
            message=f"'{trigger}' is not allowed from status {status}",
        )
        self.trigger = trigger
        self.from_status = status


class TableMachine:
    """A `transitions` machine as a table over one object the caller holds locked: one
    model-less machine per subclass (``machine``), a plain ``state``, triggers fired
    through the machine's events. An illegal trigger raises IllegalTransition."""

    state: Any
    machine: Machine  # set once per subclass, by ``build``

    def trigger_event(self, name: str, **kwargs: Any) -> None:
        """Fire trigger `name`; raise IllegalTransition when it does not apply."""
        before = str(self.state)
        event = self.machine.events.get(name)
        if event is None:
            raise IllegalTransition(name, before)
        try:
            moved = event.trigger(self, **kwargs)
        except MachineError as exc:
            raise IllegalTransition(name, before) from exc
        if not moved:  # a condition said no: still an error, never a silent no-op
            raise IllegalTransition(name, before)

    def may(self, trigger: str) -> bool:
        """Whether the table has `trigger` from the current state (conditions aside)."""
        return trigger in self.machine.get_triggers(self.state)

    @classmethod
    def build(cls, states: type[StrEnum], transitions: list[dict[str, Any]], **kw: Any) -> None:
        """The machine of every instance. Callbacks are named, so each resolves on the
        instance triggered; `on_enter_<state>`/`on_exit_<state>` are registered the way
        transitions would find them on a bound model."""
        machine = Machine(
            model=None,
            states=states,
            transitions=transitions,
            initial=None,
            auto_transitions=False,
            send_event=True,
            **kw,
        )
        for state in states:
            for kind in ("enter", "exit"):
                callback = f"on_{kind}_{state.name}"
                if hasattr(cls, callback):
                    machine.get_state(state).add_callback(kind, callback)
        cls.machine = machine


class Lifecycle(TableMachine):
    """The machine over one connected-vehicle row, which the caller holds locked.

    Triggers take keyword arguments that the callbacks read:
    ``fail(error=ErrorCode, retryable=bool, provider=str)``,
    ``authorize(vin=…, provider_vehicle_id=…)``, ``retry(operator=bool)``,
    ``deauthorize(error=ErrorCode)``, ``reauthorize()``.

    One model-less machine serves every instance (built once, below the class): a
    Lifecycle is a plain object with a ``state``, and a trigger is fired through the
    machine's event, so nothing is bound to each instance.
    """

    state: Status

    def __init__(self, session: Session, vehicle: ConnectedVehicle) -> None:
        self.session = session
        self.vehicle = vehicle
        self.state = Status(vehicle.status)

    # -- conditions -------------------------------------------------------------------------

    def retry_allowed(self, event: EventData) -> bool:
        return bool(event.kwargs.get("operator")) or bool(self.vehicle.failure_retryable)

    # -- callbacks: fields and events only, no I/O ---------------------------------------------

    def on_enter_authorized(self, event: EventData) -> None:
        v = self.vehicle
        v.vin = event.kwargs.get("vin", v.vin)
        v.provider_vehicle_id = event.kwargs.get("provider_vehicle_id", v.provider_vehicle_id)
        v.authorized_at = utcnow()

    def on_enter_failed(self, event: EventData) -> None:
        error: ErrorCode = event.kwargs["error"]
        retryable = bool(event.kwargs.get("retryable", False))
        self.vehicle.failure_code = error.value
        self.vehicle.failure_message = error.message(self.vehicle.provider)
        self.vehicle.failure_retryable = retryable
        # A failed flow's code is of no further use, nor its claim (the sweep's pass over
        # claims never spent is for pending vehicles).
        self._forget_claim()
        self.vehicle.auth_code = None
        if not retryable:  # e.g. another car, a scope refused: that access is not wanted
            self._forget_access()
        # (A retryable failure keeps tokens already bought: a re-drive validates with
        # them, since the code that bought them is spent.)

    def on_exit_failed(self, event: EventData) -> None:
        self.vehicle.failure_code = None
        self.vehicle.failure_message = None
        self.vehicle.failure_retryable = None
        self.vehicle.code_received_at = None
        self._forget_claim()

    def on_enter_pending(self, event: EventData) -> None:
        self.vehicle.pending_since = utcnow()  # its time to live runs from now

    def on_exit_authorized(self, event: EventData) -> None:
        self.vehicle.refresh_due_at = None  # nothing to keep valid any more

    def on_enter_removed(self, event: EventData) -> None:
        self._forget_access()  # nothing of the user's access is kept once removed
        self.vehicle.auth_code = None
        self._forget_claim()  # (a pending vehicle removed mid-exchange)

    def on_enter_deauthorized(self, event: EventData) -> None:
        error: ErrorCode = event.kwargs.get("error", ErrorCode.ACCESS_REVOKED)
        self.vehicle.failure_code = error.value
        self.vehicle.failure_message = error.message(self.vehicle.provider)
        self.vehicle.failure_retryable = False
        self._forget_access()  # the access is gone: its tokens are of no use, and secret

    def on_exit_deauthorized(self, event: EventData) -> None:
        self.vehicle.failure_code = None
        self.vehicle.failure_message = None
        self.vehicle.failure_retryable = None

    def forget_consent(self, event: EventData) -> None:
        """A new consent starts from nothing but the car it must bring back (`vin`)."""
        v = self.vehicle
        self._forget_access()
        v.auth_code = v.code_received_at = v.link_completed_at = None
        v.authorization_url = None
        self._forget_claim()

    def _forget_claim(self) -> None:
        """No run is spending a code of this vehicle's any more (the sweep's question
        about abandoned claims reads these)."""
        self.vehicle.code_claimed_at = self.vehicle.code_claimed_by = None

    def _forget_access(self) -> None:
        """The user's tokens, and what they read (the data snapshot, deleted as an
        orphan when the transaction flushes)."""
        v = self.vehicle
        v.access_token = v.refresh_token = None
        v.token_expires_at = v.refresh_due_at = None
        v.snapshot = None

    def _record(self, event: EventData) -> None:
        self.vehicle.status = self.state.value
        self.vehicle.updated_at = utcnow()
        steps.clear(self.vehicle)  # a new status: what was due is not (the caller schedules)
        record_event(self.session, f"connected_vehicle.{self.state.value}", self.vehicle)


Lifecycle.build(Status, TRANSITIONS, after_state_change="_record")
