"""The one retry policy of provider steps: exponential backoff with full jitter, the
provider's Retry-After honoured, capped below the broker's visibility timeout; after the
last attempt the task's `on_exhausted` decides the outcome."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from celery import Task

from providers import RetryableError
from workers import runtime

__all__ = ["ProviderTask", "backoff"]

log = logging.getLogger(__name__)


def backoff(attempt: int, retry_after: float | None, *, base: float, cap: float) -> float:
    """Seconds before attempt `attempt + 1` (`attempt` counts from 0)."""
    delay = random.uniform(0, min(cap, base * 2**attempt))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


class ProviderTask(Task):  # type: ignore[misc]
    """Base of tasks that call a provider. A task sets `on_exhausted(*args)`."""

    on_exhausted: Callable[..., None]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except RetryableError as exc:
            s = runtime.settings()
            attempt = self.request.retries
            if attempt + 1 >= s.retry_max_attempts:
                log.warning("%s: giving up after %d attempts: %s", self.name, attempt + 1, exc)
                self.on_exhausted(*args, **kwargs)
                return None
            delay = backoff(
                attempt, exc.retry_after, base=s.retry_base_seconds, cap=s.retry_max_seconds
            )
            log.info(
                "%s: attempt %d failed (%s); retry in %.1fs", self.name, attempt + 1, exc, delay
            )
            raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
