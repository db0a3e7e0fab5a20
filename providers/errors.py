"""The one exception tree of this room. Every provider error leaves it classified.

- :class:`RetryableError`: try again later (timeouts, connection errors, 5xx, 429, a
  provider's own "retry later"); carries the provider's ``Retry-After`` when it gave one.
- :class:`PermanentError`: trying again cannot help; carries a :class:`Reason` whose value
  is the error code the domain reports.

Messages name the provider, the HTTP status and the provider's error code, never a token,
a code or a secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx

__all__ = [
    "ANSWER_LOST",
    "PermanentError",
    "ProviderError",
    "Reason",
    "RetryableError",
    "parse_retry_after",
]


# How a lost answer reads in an error's text (and so in a step's `last_error`).
ANSWER_LOST = "the answer was lost"


class Reason(StrEnum):
    AUTH_CODE_INVALID = "AUTH_CODE_INVALID"
    AUTHORIZATION_DENIED = "AUTHORIZATION_DENIED"
    SCOPE_NOT_GRANTED = "SCOPE_NOT_GRANTED"
    CONNECT_PROVIDER_NOT_SUPPORTED = "CONNECT_PROVIDER_NOT_SUPPORTED"
    CONNECT_NO_VEHICLE = "CONNECT_NO_VEHICLE"
    ACCESS_REVOKED = "ACCESS_REVOKED"
    # The provider refused for a reason a retry cannot fix (bad client credentials,
    # a malformed request): an operator has to look.
    PROVIDER_REJECTED = "PROVIDER_REJECTED"


class ProviderError(Exception):
    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.provider, self.detail))


class RetryableError(ProviderError):
    """`answer_lost`: the request may have been processed and its answer lost (a read
    timeout, a dropped connection), as opposed to refused or never sent."""

    def __init__(
        self,
        provider: str,
        detail: str,
        retry_after: float | None = None,
        *,
        answer_lost: bool = False,
    ) -> None:
        super().__init__(provider, detail + (f" ({ANSWER_LOST})" if answer_lost else ""))
        self.retry_after = retry_after
        self.answer_lost = answer_lost

    def __reduce__(self) -> tuple[Any, ...]:  # Celery pickles the error of a retry
        return (_retryable, (self.provider, self.detail, self.retry_after, self.answer_lost))


class PermanentError(ProviderError):
    def __init__(self, provider: str, reason: Reason, detail: str) -> None:
        super().__init__(provider, detail)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.provider, self.reason, self.detail))


def _retryable(
    provider: str, detail: str, retry_after: float | None, answer_lost: bool
) -> RetryableError:
    error = RetryableError(provider, detail, retry_after)
    error.answer_lost = answer_lost
    return error


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
