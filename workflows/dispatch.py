"""What a transaction sets in motion happens after it commits, from one hook.

A workflow function never enqueues by hand: making a step due (``steps.schedule``,
``steps.redrive``) and recording an event (``events.record_event``) note the vehicle on
the session, and when that session commits, one hook (SQLAlchemy's ``after_commit``
reads the rows; ``after_transaction_end``, once the connection is back in the pool,
hands over) gives the database handle's dispatcher what the transaction asked for, once:

- the steps now due (each vehicle's ``step``, read at commit time: a step scheduled and
  then cleared in the same transaction is not enqueued), and other tasks it asked for
  (``note_task``: a stored provider webhook's processing);
- whether any event was recorded (the relay is kicked once per transaction at most);
- the vehicles that changed (whoever waits for one of them is woken);
- the vehicles whose status became authorized or failed (counted).

A transaction that rolls back hands over nothing. The dispatcher belongs to the
database handle the session came from (``open_database(..., dispatcher=…)``): the API's
and the worker's are ``listeners(…)`` of their own (the broker's enqueuer, the waiters'
wake-up, the metrics: ``workers.after_commit``), each called on its own; this room
knows no broker. A handle without one (a migration, a test that drives the workflow by
hand) sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction, object_session

from store.db import DISPATCHER
from store.models import ConnectedVehicle

__all__ = [
    "DISPATCHER",
    "AfterCommit",
    "Dispatcher",
    "listeners",
    "note_change",
    "note_event",
    "note_job",
    "note_step",
    "note_task",
]

_KEY = "cv.after_commit"
_READY = "cv.after_commit.ready"


@dataclass
class AfterCommit:
    """What one committed transaction asks for."""

    steps: list[tuple[str, str]] = field(default_factory=list)  # (vehicle id, step)
    tasks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (name, args)
    events: bool = False
    changed: list[str] = field(default_factory=list)  # vehicle ids, each once
    # Each vehicle whose status became authorized or failed: (id, provider, status,
    # failure code), as committed.
    decided: list[tuple[str, str, str, str | None]] = field(default_factory=list)


@dataclass
class _Noted:
    due: dict[int, ConnectedVehicle] = field(default_factory=dict)
    jobs: dict[tuple[str, str], None] = field(default_factory=dict)  # (vehicle id, step)
    changed: dict[int, ConnectedVehicle] = field(default_factory=dict)
    touched: dict[str, None] = field(default_factory=dict)  # changed, no event
    tasks: dict[tuple[str, tuple[str, ...]], None] = field(default_factory=dict)
    decided: dict[int, ConnectedVehicle] = field(default_factory=dict)  # status set


Dispatcher = Callable[[AfterCommit], None]
log = logging.getLogger(__name__)


def listeners(*each: Dispatcher) -> Dispatcher:
    """One dispatcher that hands a commit's work to each listener in turn; one that
    raises (logged) does not stop the others."""

    def dispatch(work: AfterCommit) -> None:
        for listener in each:
            try:
                listener(work)
            except Exception:
                log.exception("an after-commit listener failed (the sweep makes up for it)")

    return dispatch


def _noted(vehicle: ConnectedVehicle) -> _Noted:
    session = object_session(vehicle)
    assert session is not None, "note a vehicle that is in a session"
    noted: _Noted = session.info.setdefault(_KEY, _Noted())
    return noted


def note_step(vehicle: ConnectedVehicle) -> None:
    """The vehicle's step is due now: enqueue it once this transaction commits."""
    _noted(vehicle).due[id(vehicle)] = vehicle


def note_job(vehicle: ConnectedVehicle, step: str) -> None:
    """A step that is not the vehicle's `step` (a data fetch, whose request lives on
    its own row): enqueue it once this transaction commits."""
    _noted(vehicle).jobs[(vehicle.id, step)] = None


def note_task(session: Session, name: str, *args: str) -> None:
    """Enqueue task `name` (a name of workflows.registry) once this transaction commits."""
    noted: _Noted = session.info.setdefault(_KEY, _Noted())
    noted.tasks[(name, args)] = None


def note_event(vehicle: ConnectedVehicle) -> None:
    """An event of the vehicle was recorded: kick the relay, wake its waiters."""
    _noted(vehicle).changed[id(vehicle)] = vehicle


def note_change(vehicle: ConnectedVehicle) -> None:
    """Something a waiter may wait for changed with no event (a fetch that failed)."""
    _noted(vehicle).touched[vehicle.id] = None


def _collect(noted: _Noted) -> AfterCommit:
    out = AfterCommit(events=bool(noted.changed))
    for v in noted.due.values():
        if v.step is not None:  # still due at commit (not cleared since it was noted)
            out.steps.append((v.id, v.step))
    out.steps.extend(noted.jobs)
    out.tasks = list(noted.tasks)
    changed = [v.id for v in noted.changed.values()] + list(noted.touched)
    out.changed = list(dict.fromkeys(changed))
    out.decided = [
        (v.id, v.provider, v.status, v.failure_code)
        for v in noted.decided.values()
        if v.status in DECIDED
    ]
    return out


DECIDED = ("authorized", "failed")


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, flush_context: object) -> None:
    """Note each vehicle whose status this flush set to authorized or failed (the
    attribute's history is still there until the flush ends)."""
    if session.info.get(DISPATCHER) is None:
        return
    for obj in session.dirty:
        if (
            isinstance(obj, ConnectedVehicle)
            and obj.status in DECIDED
            and inspect(obj).attrs.status.history.added
        ):
            noted: _Noted = session.info.setdefault(_KEY, _Noted())
            noted.decided[id(obj)] = obj


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Also fired when a SAVEPOINT is released: that is no commit of the work yet.
    if session.in_nested_transaction():
        return
    noted: _Noted | None = session.info.pop(_KEY, None)
    if noted is not None and session.info.get(DISPATCHER) is not None:
        session.info[_READY] = _collect(noted)  # read the rows now, hand over below


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """The root transaction ended: its connection is back in the pool, so the dispatcher
    (a broker, Redis) never holds one. A transaction that did not commit noted work
    that is forgotten here. Whatever the dispatcher raises is logged, never raised: the
    data is committed, and the sweep re-drives what was not sent."""
    if transaction.parent is not None:
        return
    session.info.pop(_KEY, None)
    work: AfterCommit | None = session.info.pop(_READY, None)
    dispatcher: Dispatcher | None = session.info.get(DISPATCHER)
    if work is None or dispatcher is None:
        return
    if not (work.steps or work.tasks or work.events or work.changed or work.decided):
        return
    try:
        dispatcher(work)
    except Exception:
        log.exception("could not hand over what a commit set in motion (the sweep will)")
