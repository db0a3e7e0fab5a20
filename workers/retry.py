"""The retry policy of provider steps, applied: the policy itself is declared once in
``providers.retry`` (attempts, backoff, inline re-tries, database outages). The attempt
count lives in the database (workflows.steps), not in the broker's redelivery count: a
step gets exactly ``CV_RETRY_MAX_ATTEMPTS`` attempts, then the task's `on_exhausted`
decides the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task

from providers import RetryableError, RetryPolicy
from providers.retry import DATABASE_OUTAGE
from store.db import DATABASE_AWAY
from workers import runtime
from workers.enqueue import FAILED_HERE
from workflows import steps, unreadable
from workflows.unreadable import UNREADABLE

__all__ = ["ProviderTask", "WorkflowFailed"]

log = logging.getLogger(__name__)


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


class ProviderTask(Task):  # type: ignore[misc]
    """Base of tasks that run one provider step for the vehicle id they are given.
    A task sets `on_exhausted(vehicle_id)`."""

    on_exhausted: Callable[[str], None]
    # Celery's own count must never stop a retry: the database counts attempts. (A
    # `max_retries=None` passed to `retry()` means "the task's default", which is 3.)
    max_retries = None
    # An expected outcome: logged without a traceback.
    throws = (WorkflowFailed,)

    def __call__(self, vehicle_id: str, *args: Any, **kwargs: Any) -> Any:
        failed: list[tuple[str, str | None]] = []
        noted = FAILED_HERE.set(failed)  # the dispatcher adds what this run's commits failed
        try:
            result = self._step(vehicle_id, *args, **kwargs)
        finally:
            FAILED_HERE.reset(noted)
        for failed_id, code in failed:
            if failed_id == vehicle_id:
                raise WorkflowFailed(vehicle_id, code)
        return result

    def _step(self, vehicle_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(vehicle_id, *args, **kwargs)
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
            if tries >= outage.max_attempts:
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
            policy, retry_after = RetryPolicy.of(runtime.settings()), exc.retry_after
            delay = steps.record_failure(
                runtime.database(),
                vehicle_id,
                str(exc),
                max_attempts=policy.max_attempts,
                delay_for=lambda attempts: policy.backoff(attempts, retry_after),
            )
            if delay is None:
                log.warning("%s: giving up: %s", self.name, exc)
                self.on_exhausted(vehicle_id)
                return None
            log.info("%s: %s; next try in %.1fs", self.name, exc, delay)
            raise self.retry(exc=exc, countdown=delay) from exc
