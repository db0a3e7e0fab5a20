"""The connected vehicle's life as one `transitions` state machine.

The statuses clients see are its top states; `pending` has nested states, the stages of
the user's consent and its validation (``pending.code_claimed``…), so a stage exists only
while the vehicle is pending and the two can never disagree. A trigger of `pending`
(``fail``, ``authorize``, ``remove``) applies from any of its stages.

    pending ─┬─ linking ──link_made──► awaiting_user ──receive_code──► code_received ◄─┐
             │                              │                              │ claim   release
             │                              └──come_back──► returned       ▼         │
             │                                         tokens_held ◄─buy── code_claimed
             ├──authorize──► authorized ──request_removal──► pending_removal ──► removed
             └──fail──► failed ──retry / reauthorize──► pending

Neither status nor stage is a column of its own beside the facts: the status is stored
(`status`, which clients filter by), and the stage is read from the facts that carry its
data (the link, the code, when it was claimed, the tokens, when the user came back), which
the sweep's partial indexes read too. A :class:`Lifecycle` wraps one row the caller holds
locked; its callbacks only set fields and add the outbox event of a change of status, in
the caller's transaction. An illegal trigger raises :class:`IllegalTransition`, never
returns quietly.
"""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session
from transitions import EventData, MachineError
from transitions.extensions.nesting import HierarchicalMachine, NestedState

from store.models import ConnectedVehicle, utcnow
from workflows import steps
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event

# transitions logs every callback it runs at INFO: several lines per change in a worker
# at INFO, and CPU spent formatting them. Our own events say what changed.
logging.getLogger("transitions").setLevel(logging.WARNING)

__all__ = [
    "TRANSITIONS",
    "IllegalTransition",
    "Lifecycle",
    "Stage",
    "Status",
    "stage_of",
    "state_of",
]


class Status(StrEnum):
    pending = "pending"
    authorized = "authorized"
    failed = "failed"
    pending_removal = "pending_removal"
    removed = "removed"
    deauthorized = "deauthorized"


class Stage(StrEnum):
    """Where a pending vehicle's consent stands. Clients see `pending` throughout."""

    linking = "linking"  # the provider makes the consent link (a job: Enode)
    awaiting_user = "awaiting_user"  # the user is at the provider
    code_received = "code_received"  # a single-use code to spend
    code_claimed = "code_claimed"  # a run is spending it (committed before it does)
    tokens_held = "tokens_held"  # bought; the account is being validated
    returned = "returned"  # back from a link flow (no code); the account is being validated


# Statuses in which the service holds and uses the user's tokens.
HOLDING = (Status.pending, Status.authorized, Status.pending_removal)


def stage_of(vehicle: ConnectedVehicle) -> Stage:
    """The stage a pending vehicle's facts say it is at."""
    if vehicle.access_token:
        return Stage.tokens_held
    if vehicle.link_completed_at is not None:
        return Stage.returned
    if vehicle.code_claimed_at is not None:
        return Stage.code_claimed
    if vehicle.auth_code:
        return Stage.code_received
    if not vehicle.authorization_url:
        return Stage.linking
    return Stage.awaiting_user


def state_of(vehicle: ConnectedVehicle) -> str:
    """The machine's state of a row: its status, and its stage while pending."""
    if vehicle.status == Status.pending:
        return f"{Status.pending}.{stage_of(vehicle)}"
    return vehicle.status


S = Status


def _in(stage: Stage) -> str:
    return f"{S.pending}.{stage}"


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
    {"trigger": "remove", "source": [S.pending, S.failed, S.deauthorized], "dest": S.removed},
    # pending's stages: (trigger, from, to, the callback that sets the facts)
    *(
        dict(zip(("trigger", "source", "dest", "after"), (t, _in(a), _in(b), cb), strict=True))
        for t, a, b, cb in [
            ("link_made", Stage.linking, Stage.awaiting_user, "_link"),
            ("receive_code", Stage.awaiting_user, Stage.code_received, "_code"),
            ("come_back", Stage.awaiting_user, Stage.returned, "_back"),
            ("claim", Stage.code_received, Stage.code_claimed, "_claim"),
            # the code was not spent (the request never left, or was refused): claim again
            ("release", Stage.code_claimed, Stage.code_received, "_free"),
            ("buy_tokens", Stage.code_claimed, Stage.tokens_held, "_buy"),
        ]
    ),
]


class IllegalTransition(DomainError):
    def __init__(self, trigger: str, status: str) -> None:
        super().__init__(
            ErrorCode.ILLEGAL_TRANSITION,
            message=f"'{trigger}' is not allowed from status {status}",
        )
        self.trigger = trigger
        self.from_status = status


class _Nested(NestedState):
    # "pending.code_claimed": the stages' names have underscores, transitions' default
    # separator; this machine's own state class, so nothing global is changed.
    separator = "."


class _Machine(HierarchicalMachine):
    state_cls = _Nested


def _build() -> HierarchicalMachine:
    """The one machine of every Lifecycle: model-less, fired with ``trigger_event``."""
    machine = _Machine(
        model=None,
        states=[
            {"name": S.pending.value, "children": [s.value for s in Stage], "initial": "linking"},
            *(s.value for s in Status if s is not S.pending),
        ],
        transitions=TRANSITIONS,
        initial=None,
        auto_transitions=False,
        send_event=True,
        after_state_change="_record",
    )
    for status in Status:  # on_enter_<status>/on_exit_<status>, as on a bound model
        for kind in ("enter", "exit"):
            callback = f"on_{kind}_{status.name}"
            if hasattr(Lifecycle, callback):
                machine.get_state(status.value).add_callback(kind, callback)
    return machine


class Lifecycle:
    """The machine over one connected-vehicle row, which the caller holds locked.

    Triggers take keyword arguments that the callbacks read:
    ``fail(error=ErrorCode, retryable=bool)``, ``authorize(vin=…, provider_vehicle_id=…)``,
    ``retry(operator=bool)``, ``deauthorize(error=ErrorCode)``, ``reauthorize()``;
    pending's stages: ``link_made(url=…)``, ``receive_code(code=…)``,
    ``claim(owner=<the claiming process's heartbeat id, or None>)``,
    ``buy_tokens(write=<callable that writes the tokens>)``.

    One model-less machine serves every instance (built once, below the class): a
    Lifecycle is a plain object with a ``state``, so nothing is bound to each instance.
    `session` may be None for a row outside any (a stage's move records nothing).
    """

    machine: HierarchicalMachine
    state: str

    def __init__(self, session: Session | None, vehicle: ConnectedVehicle) -> None:
        self.session = session
        self.vehicle = vehicle
        self.state = state_of(vehicle)

    @property
    def status(self) -> Status:
        return Status(self.state.partition(".")[0])

    @property
    def stage(self) -> Stage | None:
        """The stage while pending, else None."""
        _, _, stage = self.state.partition(".")
        return Stage(stage) if stage else None

    def is_(self, *states: Status | Stage) -> bool:
        """Whether the vehicle is in one of `states` (a stage is a state of pending)."""
        return self.status in states or self.stage in states

    def holds_access(self) -> bool:
        """Whether the service still holds and uses the user's tokens."""
        return self.status in HOLDING

    def may(self, trigger: str) -> bool:
        """Whether the table has `trigger` from the current state (conditions aside)."""
        return trigger in _TRIGGERS[self.state]

    def trigger_event(self, name: str, **kwargs: Any) -> None:
        """Fire trigger `name`; raise IllegalTransition when it does not apply."""
        status = self.status.value
        if name not in _EVENTS:
            raise IllegalTransition(name, status)
        try:
            with _FIRING:
                moved = self.machine.trigger_event(self, name, **kwargs)
        except MachineError as exc:
            raise IllegalTransition(name, status) from exc
        if not moved:  # a condition said no: still an error, never a silent no-op
            raise IllegalTransition(name, status)

    def fire_if(self, trigger: str, **kwargs: Any) -> bool:
        """Fire `trigger` when the table has it from here; False (nothing changed) when
        it does not."""
        if not self.may(trigger):
            return False
        self.trigger_event(trigger, **kwargs)
        return True

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

    # -- pending's stages: the facts that make the stage ------------------------------------

    def _link(self, event: EventData) -> None:
        self.vehicle.authorization_url = event.kwargs["url"]
        steps.clear(self.vehicle)  # now the user has to act
        self._updated()

    def _code(self, event: EventData) -> None:
        self.vehicle.auth_code = event.kwargs["code"]
        self.vehicle.code_received_at = utcnow()

    def _back(self, event: EventData) -> None:
        self.vehicle.link_completed_at = utcnow()

    def _claim(self, event: EventData) -> None:
        self.vehicle.code_claimed_at = utcnow()
        # the process spending it, when it beats (workflows.liveness): if it dies, the
        # sweep knows at once that this code may have left
        self.vehicle.code_claimed_by = event.kwargs.get("owner")

    def _free(self, event: EventData) -> None:
        self._forget_claim()

    def _buy(self, event: EventData) -> None:
        event.kwargs["write"](self.vehicle)
        self.vehicle.auth_code = None  # spent: of no further use

    # -- helpers --------------------------------------------------------------------------------

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

    def _updated(self) -> None:
        """Something clients see changed within the status (the link is ready)."""
        self.vehicle.updated_at = utcnow()
        if self.session is not None:
            record_event(self.session, "connected_vehicle.updated", self.vehicle)

    def _record(self, event: EventData) -> None:
        status = self.status
        if status != self.vehicle.status:  # a new status; a stage's move is its own facts
            self.vehicle.status = status.value
            self.vehicle.updated_at = utcnow()
            steps.clear(self.vehicle)  # what was due is not (the caller schedules)
            assert self.session is not None, "a change of status is recorded in a session"
            record_event(self.session, f"connected_vehicle.{status.value}", self.vehicle)
        self.state = state_of(self.vehicle)  # the stage the facts now say


Lifecycle.machine = _build()
# transitions' HierarchicalMachine enters a nested state's scope by swapping its own
# `events` and `states` while it runs a trigger, so the one machine every thread shares
# runs one trigger at a time (two callbacks of the API's threads raced without it). The
# callbacks only set fields and add rows, no I/O: the lock is held for microseconds.
# (Under gevent, threading is patched before this module is imported.)
_FIRING = threading.RLock()  # re-entrant: a callback may ask the machine again
_EVENTS = frozenset(Lifecycle.machine.events)
# What each state may fire, read once (the table never changes; the machine's own
# get_triggers walks every event's transitions at each ask).
_TRIGGERS = {
    state: frozenset(Lifecycle.machine.get_triggers(state))
    for state in Lifecycle.machine.get_nested_state_names()
}
