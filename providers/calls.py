"""What the provider calls of one unit of work came to: how many, and the last one (and
the last that failed) by endpoint template and HTTP status. The metered transport
(providers.http) notes each call here when a log is open; a step's attempt record
(workflows.attempts) reads it. Only templates and statuses: never a URL, a body or a
header."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Call", "CallLog", "current", "logging_calls", "note"]


@dataclass(frozen=True)
class Call:
    endpoint: str
    status: int | None  # None: no answer (a timeout, a connection refused)


@dataclass
class CallLog:
    calls: int = 0
    last: Call | None = None
    last_failed: Call | None = None  # an answer >= 400, or none at all

    def deciding(self, ok: bool) -> Call | None:
        """The call that tells why: the last that failed unless the work succeeded."""
        return self.last if ok else (self.last_failed or self.last)


_LOG: ContextVar[CallLog | None] = ContextVar("cv_provider_calls", default=None)


def current() -> CallLog | None:
    return _LOG.get()


@contextmanager
def logging_calls() -> Iterator[CallLog]:
    """Note the provider calls made in this context (calls made at once elsewhere are
    noted too: providers.http.concurrently runs them in a copy of this context)."""
    log = CallLog()
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def note(endpoint: str, status: int | None) -> None:
    log = _LOG.get()
    if log is None:
        return
    call = Call(endpoint, status)
    log.calls += 1
    log.last = call
    if status is None or status >= 400:
        log.last_failed = call
