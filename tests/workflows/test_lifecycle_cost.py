"""A Lifecycle is cheap: one machine for the class, nothing bound per row, and nothing
logged when one is made (transitions used to warn about `may_retry` on every build)."""

from __future__ import annotations

import logging

import pytest

from store.db import Database
from tests.helpers.store import add_vehicle
from workflows.errors import ErrorCode
from workflows.machine import Lifecycle
from workflows.vehicles import lock


def test_every_lifecycle_shares_one_machine_and_logs_nothing(
    clean: Database, caplog: pytest.LogCaptureFixture
) -> None:
    failed = add_vehicle(
        clean, status="failed", failure_code="PROVIDER_UNAVAILABLE", failure_retryable=True
    )
    pending = add_vehicle(clean)
    caplog.set_level(logging.DEBUG, logger="transitions")

    with clean.session() as session:
        first = lock(session, failed)
        second = lock(session, pending)
        assert first is not None and second is not None
        one, two = Lifecycle(session, first), Lifecycle(session, second)
        one.trigger_event("retry")
        two.trigger_event("fail", error=ErrorCode.AUTH_CODE_INVALID)
        session.commit()

    assert one.machine is two.machine
    assert not hasattr(one, "retry")  # no trigger bound to the instance
    assert (first.status, second.status) == ("pending", "failed")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
