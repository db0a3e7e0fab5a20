"""The one retry policy of provider steps: exponential backoff with full jitter, the
provider's Retry-After honoured, capped below the broker's visibility timeout. The attempt
count lives in the database (workflows.steps), not in the broker's redelivery count;
after the last attempt the task's `on_exhausted` decides the outcome."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from providers import RetryableError
from workers import runtime
from workflows import steps

__all__ = ["ProviderTask", "backoff"]

log = logging.getLogger(__name__)


def backoff(attempt: int, retry_after: float | None, *, base: float, cap: float) -> float:
    """Seconds before the next try, after `attempt` failed tries (counting from 1)."""
    delay = random.uniform(0, min(cap, base * 2 ** (attempt - 1)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


class ProviderTask(Task):  # type: ignore[misc]
    """Base of tasks that run one provider step for the vehicle id they are given.
    A task sets `on_exhausted(vehicle_id)`."""

    on_exhausted: Callable[[str], None]

    def __call__(self, vehicle_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(vehicle_id, *args, **kwargs)
        except OperationalError as exc:
            # The database went away (a restart, a dropped connection): not the provider's
            # fault and no attempt spent; the pool reconnects on the next try.
            wait = backoff(self.request.retries + 1, None, base=1.0, cap=30.0)
            log.warning(
                "%s: database unavailable (%s); next try in %.1fs",
                self.name,
                type(exc.orig).__name__,
                wait,
            )
            raise self.retry(exc=exc, countdown=wait, max_retries=20) from exc
        except RetryableError as exc:
            s, retry_after = runtime.settings(), exc.retry_after
            delay = steps.record_failure(
                runtime.database(),
                vehicle_id,
                str(exc),
                max_attempts=s.retry_max_attempts,
                delay_for=lambda attempts: backoff(
                    attempts, retry_after, base=s.retry_base_seconds, cap=s.retry_max_seconds
                ),
            )
            if delay is None:
                log.warning("%s: giving up: %s", self.name, exc)
                self.on_exhausted(vehicle_id)
                return None
            log.info("%s: %s; next try in %.1fs", self.name, exc, delay)
            raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
