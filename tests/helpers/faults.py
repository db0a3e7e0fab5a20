"""What every fault run keeps (SPEC §6), and the load it runs under."""

from __future__ import annotations

from harness import Report

__all__ = ["LATENCY", "WORKER_PROCESSES", "assert_kept"]

# A request to the fake takes this long: work stays in flight long enough to be hit.
LATENCY = 0.02
# Pool processes of a worker (harness.cluster starts workers with 4).
WORKER_PROCESSES = 4


def assert_kept(report: Report, *, interrupted_with_a_worker: int = 0) -> None:
    """The promises. A code whose worker was stopped midway (killed, or its task
    cancelled when the broker connection dropped) may have been sent: it is never sent
    again, and its vehicle fails AUTHORIZATION_INTERRUPTED (retryable: its user consents
    again). At most one such vehicle per task the stopped worker was running."""
    print(report.line())
    assert report.lost == 0, report
    assert report.terminal == report.started, report
    interrupted = report.failures.get("AUTHORIZATION_INTERRUPTED", 0)
    assert set(report.failures) <= {"AUTHORIZATION_INTERRUPTED"}, report
    assert interrupted <= interrupted_with_a_worker, report
    assert report.authorized + interrupted == report.started, report
    assert report.duplicated_transitions == 0, report
    assert report.duplicated_events == 0, report
    assert report.double_exchanges == 0, report
    assert report.codes_sent_twice == 0, report  # SPEC §6: a code is sent at most once
