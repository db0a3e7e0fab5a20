"""The retry policy, declared once: how often a step is tried, how long between tries, and
how much an adapter may re-try a read inside one try.

- A **step** (validate, link, revoke) gets exactly ``max_attempts`` attempts in all; the
  count lives in the database (``workflows.steps``), the delay is exponential backoff
  with full jitter, at least the provider's ``Retry-After``, at most ``cap``.
- In the step's first attempt, an adapter may re-try a failed **read** at once
  ``inline_retries`` times in all (a budget shared by every read of the attempt, not per
  read), and only when the provider asks for a wait of at most ``inline_wait_max``: a
  blip then costs a moment rather than a backoff. Later attempts re-try nothing inline
  (``for_attempt``), so a read is sent at most ``max_attempts + inline_retries`` times
  over the whole step, never their product.
- A **database outage** (the connection dropped, PostgreSQL restarting) spends no
  attempt: it is waited out on its own schedule (``DATABASE_OUTAGE``).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DATABASE_OUTAGE", "SAVING_SPENT", "RetryPolicy"]


class _RetrySettings(Protocol):
    retry_max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base: float
    cap: float
    inline_retries: int = 2
    inline_wait_max: float = 2.0

    @classmethod
    def of(cls, settings: _RetrySettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.retry_max_attempts,
            base=settings.retry_base_seconds,
            cap=settings.retry_max_seconds,
        )

    def for_attempt(self, failed_before: int) -> RetryPolicy:
        """The policy of an attempt after `failed_before` failed ones: only the first
        attempt re-tries reads inline, so a read is sent at most
        ``max_attempts + inline_retries`` times over the whole step."""
        if failed_before == 0:
            return self
        return dataclasses.replace(self, inline_retries=0)

    def ceiling(self, attempt: int) -> float:
        """The longest wait after `attempt` failed tries: `base` doubled, up to `cap`."""
        return min(self.cap, self.base * 2.0 ** (attempt - 1))

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before the next try, after `attempt` failed tries (counting from 1):
        full jitter, at least the provider's Retry-After, at most `cap`."""
        delay = random.uniform(0, self.ceiling(attempt))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.cap)

    def inline_wait(self, attempt: int, retry_after: float | None) -> float:
        """The pause before re-trying a read inline (short: a moment, not a backoff)."""
        if retry_after is not None:
            return retry_after
        wait = 0.05 * 2**attempt
        return random.uniform(wait / 2, wait)


# Tokens bought with a spent code are waited for a few seconds into the database: the
# code cannot be spent again (workflows.provider_steps).
SAVING_SPENT = RetryPolicy(max_attempts=6, base=0.2, cap=3.2, inline_retries=0)

# The database going away is not the provider's fault: no attempt spent, tried for a
# while (about five minutes in all) with the same backoff.
DATABASE_OUTAGE = RetryPolicy(max_attempts=20, base=1.0, cap=30.0, inline_retries=0)
