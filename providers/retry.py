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

The same type keeps every other schedule: a client webhook's deliveries
(``workflows.webhook_delivery.DELIVERY``), a broker send (``workers.enqueue.BROKER_SEND``),
a database outage under a step (``workers.retry.DATABASE_OUTAGE``), tokens bought with
something single use waited into the database (``workflows.session.SAVING_SPENT``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RetryPolicy"]


class _RetrySettings(Protocol):
    retry_max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float


@dataclass(frozen=True)
class RetryPolicy:
    """A retry schedule: how many attempts, and the wait after each failed one. The
    waits double from `base` up to `cap` (full jitter), or follow a fixed `table` (the
    last entry repeated) spread by ±`spread`. Steps, webhook deliveries and broker
    sends each keep one of these."""

    max_attempts: int
    base: float = 0.0
    cap: float = math.inf
    inline_retries: int = 2
    inline_wait_max: float = 2.0
    table: tuple[float, ...] = ()
    spread: float | None = None  # None: full jitter, anywhere in [0, ceiling]

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
        """The longest wait after `attempt` failed tries: `base` doubled, up to `cap`
        (or the table's entry)."""
        if self.table:
            return min(self.cap, self.table[min(attempt, len(self.table)) - 1])
        return min(self.cap, self.base * 2.0 ** (attempt - 1))

    def exhausted(self, attempts: int) -> bool:
        """Whether `attempts` tries are all the schedule allows."""
        return attempts >= self.max_attempts

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before the next try, after `attempt` failed tries (counting from 1):
        jittered, at least the provider's Retry-After, at most `cap`."""
        ceiling = self.ceiling(attempt)
        if self.spread is None:
            delay = random.uniform(0, ceiling)
        else:
            delay = ceiling * random.uniform(1 - self.spread, 1 + self.spread)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.cap)

    def inline_wait(self, attempt: int, retry_after: float | None) -> float:
        """The pause before re-trying a read inline (short: a moment, not a backoff)."""
        if retry_after is not None:
            return retry_after
        wait = 0.05 * 2**attempt
        return random.uniform(wait / 2, wait)
