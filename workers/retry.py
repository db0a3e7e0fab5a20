"""The retry policy of provider steps, applied: the schedule type is declared once in
``providers.retry`` (attempts, backoff, inline re-tries); each step's schedule is the
registry's (workflows.registry). The attempt count lives in the database
(workflows.steps), not in the broker's redelivery count: a step gets exactly
``CV_RETRY_MAX_ATTEMPTS`` attempts, then the task's `on_exhausted` decides the outcome.

A **database outage** (the connection dropped, PostgreSQL restarting) spends no attempt:
it is waited out on its own schedule (:data:`DATABASE_OUTAGE`), beside the rule above.

A step's outcome comes back from its run: a vehicle the run failed raises
:class:`WorkflowFailed` once everything is committed, and the task ends FAILURE."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Retry

from providers import RetryableError, RetryPolicy
from settings import Settings
from store.db import DATABASE_AWAY
from workers import runtime
from workflows import attempts, unreadable
from workflows.locked import record_failure
from workflows.steps import Failed, Outcome, Step, WorkflowFailed
from workflows.unreadable import UNREADABLE

__all__ = ["DATABASE_OUTAGE", "ProviderTask", "WorkflowFailed"]

# The database going away is not the provider's fault: no attempt spent, tried for a
# while (about five minutes in all) with the same backoff.
DATABASE_OUTAGE = RetryPolicy(max_attempts=20, base=1.0, cap=30.0, inline_retries=0)

log = logging.getLogger(__name__)


class ProviderTask(Task):  # type: ignore[misc]
    """Base of tasks that run one provider step for the vehicle id they are given: the
    run returns its outcome. A task sets its `schedule` (the registry's) and
    `on_exhausted(vehicle_id) -> Outcome`."""

    schedule: Callable[[Settings], RetryPolicy]
    on_exhausted: Callable[[str], Outcome]
    step: Step
    # Celery's own count must never stop a retry: the database counts attempts. (A
    # `max_retries=None` passed to `retry()` means "the task's default", which is 3.)
    max_retries = None
    # An expected outcome: logged without a traceback.
    throws = (WorkflowFailed,)

    def __call__(self, vehicle_id: str, *args: Any, **kwargs: Any) -> None:
        # The attempt is recorded as it ends (workflows.attempts): in the step's own
        # last transaction, or in one of its own at the end.
        record = runtime.settings().step_attempts
        with attempts.attempt(
            vehicle_id, self.step, task_id=self.request.id, record=record
        ) as attempt:
            try:
                outcome = self._step(vehicle_id, *args, **kwargs)
            except DATABASE_AWAY:
                raise  # no attempt spent, and nowhere to write one
            except Exception as exc:
                if not isinstance(exc, Retry):  # another try: recorded already
                    attempts.finish(runtime.database(), attempt, exc)
                raise
            attempts.finish(runtime.database(), attempt)
        if isinstance(outcome, Failed):
            raise WorkflowFailed(vehicle_id, outcome.code)

    def _step(self, vehicle_id: str, *args: Any, **kwargs: Any) -> Outcome:
        try:
            outcome: Outcome = super().__call__(vehicle_id, *args, **kwargs)
            return outcome
        except UNREADABLE as exc:
            # Reading it again fails again: the row is marked, its step cleared (the
            # sweep would re-drive it for ever), and the worker goes on with the rest.
            unreadable.mark_now(runtime.database(), vehicle_id, exc)
            return None
        except DATABASE_AWAY as exc:
            # The database went away (a restart, a dropped connection) or every pooled
            # connection is busy: not the provider's fault and no attempt spent; the pool
            # reconnects (or frees up) by the next try.
            outage = DATABASE_OUTAGE
            tries = self.request.retries + 1
            if outage.exhausted(tries):
                raise
            wait = outage.backoff(tries)
            log.warning(
                "%s: database unavailable (%s); next try in %.1fs",
                self.name,
                type(getattr(exc, "orig", None) or exc).__name__,
                wait,
            )
            raise self.retry(exc=exc, countdown=wait) from exc
        except RetryableError as exc:
            policy, retry_after = self.schedule(runtime.settings()), exc.retry_after
            delay = record_failure(
                runtime.database(),
                vehicle_id,
                str(exc),
                max_attempts=policy.max_attempts,
                delay_for=lambda attempts: policy.backoff(attempts, retry_after),
            )
            if delay is None:
                log.warning("%s: giving up: %s", self.name, exc)
                return self.on_exhausted(vehicle_id)
            log.info("%s: %s; next try in %.1fs", self.name, exc, delay)
            raise self.retry(exc=exc, countdown=delay) from exc
