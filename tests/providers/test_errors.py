"""Which failed requests may have been done at the provider: the line between sending a
single-use thing again (safe) and never again (its answer was lost)."""

from __future__ import annotations

import pickle

import httpx
import pytest

from providers.errors import RetryableError
from providers.http import DeadlineExceeded
from providers.plumbing import transport_failure


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (httpx.ConnectError("refused"), False),  # never left this host
        (httpx.ConnectTimeout("no answer to SYN"), False),
        (httpx.ReadTimeout("sent, no answer"), True),
        (httpx.RemoteProtocolError("dropped mid-answer"), True),
        (httpx.ReadError("reset"), True),
        (DeadlineExceeded(), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_a_transport_failure_says_whether_the_answer_was_lost(error: Exception, lost: bool) -> None:
    failure = transport_failure("Smartcar", "token request", error)

    assert isinstance(failure, RetryableError)
    assert failure.answer_lost is lost
    assert ("the answer was lost" in str(failure)) is lost


def test_a_lost_answer_survives_the_trip_through_celery() -> None:
    """A retry pickles its error: the flag must come back."""
    failure = RetryableError("Tesla", "token refresh: ReadTimeout", 3.0, answer_lost=True)

    again = pickle.loads(pickle.dumps(failure))  # noqa: S301 - our own bytes

    assert (again.answer_lost, again.retry_after, str(again)) == (True, 3.0, str(failure))
