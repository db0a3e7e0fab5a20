"""Each attempt of a workflow step, recorded as it ends (the ``step_attempts`` table):
the operators' history of a vehicle (SPEC §8).

A task opens an attempt (:func:`attempt`) around one run of its step; the provider calls
made meanwhile are noted (providers.calls). The record is written, where it can be, in
the transaction that ends the attempt anyway, so that recording costs no transaction of
its own on the way to `authorized`:

- a ``locked`` block (workflows.locked) after which the step is no longer due (done, the
  vehicle decided, the step changed): :func:`ended_in` writes it there;
- a failed try that will be tried again, or whose attempts are spent
  (``record_failure``): :func:`write` in that transaction;
- anything else that called the provider (the data fetch, which is not a vehicle's step;
  an error nobody expected): :func:`finish` writes it in a transaction of its own.

A run that found its step not due (a duplicate message, decided already) made no attempt
and records none. Never a token, a code or a secret: the error is a provider error's
message (provider, HTTP status, the provider's own code), the endpoint its template.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

import logconfig
from providers import calls
from store.db import Database
from store.models import ConnectedVehicle, StepAttempt, utcnow
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["Attempt", "Outcome", "attempt", "ended_in", "finish", "write"]

log = logging.getLogger(__name__)


class Outcome:
    succeeded = "succeeded"
    failed = "failed"  # the vehicle failed (its failure code says why)
    retrying = "retrying"  # a transient error; another attempt is due
    exhausted = "exhausted"  # a transient error, and the attempts are spent
    refused = "refused"  # the provider refused (the vehicle's status says what followed)
    error = "error"  # something nobody expected (a bug): the log has the traceback


@dataclass
class Attempt:
    vehicle_id: str
    step: Step
    task_id: str | None
    request_id: str | None
    started_at: datetime = field(default_factory=utcnow)
    calls: calls.CallLog = field(default_factory=calls.CallLog)
    # Known in the run's first locked block: the attempt's number, and whether the step
    # was due at all (else this run is no attempt).
    number: int | None = None
    due: bool | None = None
    written: bool = False

    def row(
        self,
        outcome: str,
        *,
        error_code: str | None = None,
        error: str | None = None,
        number: int | None = None,
    ) -> dict[str, object]:
        """The record's columns (inserted with one Core statement: no ORM object, no
        identity map, no RETURNING)."""
        ok = outcome == Outcome.succeeded
        deciding = self.calls.deciding(ok)
        return dict(
            vehicle_id=self.vehicle_id,
            step=self.step.value,
            attempt=number or self.number or 1,
            task_id=self.task_id,
            started_at=self.started_at,
            ended_at=utcnow(),
            outcome=outcome,
            error_code=error_code,
            error=None if error is None else " ".join(error.split())[:300],
            provider_calls=self.calls.calls,
            http_status=deciding.status if deciding else None,
            endpoint=deciding.endpoint if deciding else None,
            request_id=self.request_id,
        )


_INSERT = insert(StepAttempt)
_CURRENT: ContextVar[Attempt | None] = ContextVar("cv_step_attempt", default=None)

# A vehicle's own steps: due on its row (the data fetch is not one: it ends on its own).
_VEHICLE_STEPS = frozenset(s for s in Step if s is not Step.fetch)


@contextmanager
def attempt(
    vehicle_id: str, step: Step, *, task_id: str | None = None, record: bool = True
) -> Iterator[Attempt]:
    """One run of `step` for the vehicle: what it does is recorded when it ends (unless
    not `record`: CV_STEP_ATTEMPTS off)."""
    a = Attempt(vehicle_id, step, task_id, logconfig.current("request_id"))
    a.written = not record
    token = _CURRENT.set(a)
    try:
        with calls.logging_calls() as log_:
            a.calls = log_
            yield a
    finally:
        _CURRENT.reset(token)


def _current(vehicle_id: str) -> Attempt | None:
    a = _CURRENT.get()
    return a if a is not None and a.vehicle_id == vehicle_id and not a.written else None


def began_in(row: ConnectedVehicle) -> None:
    """A locked block took the vehicle: the run's first one says whether its step is due,
    and which attempt this is."""
    a = _current(row.id)
    if a is None or a.due is not None:
        return
    a.due = a.step not in _VEHICLE_STEPS or row.step == a.step.value
    # a vehicle's step counts its failed attempts on the row; the data fetch does not
    a.number = (row.attempts or 0) + 1 if a.step in _VEHICLE_STEPS else 1


def superseded(row: ConnectedVehicle) -> None:
    """A locked block refused to act (the vehicle was decided, or moved on, by another
    run): when the step is no longer due, what this run did is no attempt of its own,
    and records nothing (the run that decided recorded its attempt)."""
    a = _current(row.id)
    if a is not None and a.step in _VEHICLE_STEPS and row.step != a.step.value:
        a.due = False


def ended_in(session: Session, row: ConnectedVehicle) -> None:
    """Before a locked block commits: when the run's step is no longer due, its attempt
    ended in this transaction, and is written in it."""
    a = _current(row.id)
    if a is None or not a.due or a.step not in _VEHICLE_STEPS or row.step == a.step.value:
        return
    if row.status == Status.failed:
        record = a.row(Outcome.failed, error_code=row.failure_code, error=row.failure_message)
    else:
        record = a.row(Outcome.succeeded)
    session.execute(_INSERT, record)
    a.written = True


def write(session: Session, row: ConnectedVehicle, error: str, *, spent: bool) -> None:
    """A failed try, in the transaction that counts it (row.attempts counted already)."""
    a = _current(row.id)
    if a is None or a.due is False:
        return
    outcome = Outcome.exhausted if spent else Outcome.retrying
    record = a.row(outcome, error_code="PROVIDER_UNAVAILABLE", error=error, number=row.attempts)
    session.execute(_INSERT, record)
    a.written = True


def finish(db: Database, a: Attempt, error: BaseException | None = None) -> None:
    """At the end of the run: an attempt not yet written that called the provider, or
    raised what nobody expected, is written in a transaction of its own (best effort:
    the history must never fail a step)."""
    if a.written or a.due is False or (a.calls.calls == 0 and error is None):
        return
    if error is not None:  # its type only: a message nobody wrote for operators
        record = a.row(Outcome.error, error=type(error).__name__)
    else:
        last = a.calls.last
        status = last.status if last is not None else None
        if status is not None and status < 400:
            outcome = Outcome.succeeded
        elif status is not None and status < 500:
            outcome = Outcome.refused
        else:  # no answer, or the provider's own error: tried again later
            outcome = Outcome.retrying
        record = a.row(outcome)
    started = time.perf_counter()
    try:
        with db.session() as session:
            session.execute(_INSERT, record)
            session.commit()
        a.written = True
    except Exception:
        log.warning(
            "vehicle %s: the %s attempt could not be recorded (%.0f ms)",
            a.vehicle_id,
            a.step.value,
            (time.perf_counter() - started) * 1000,
            exc_info=True,
        )
