"""Housekeeping is quiet unless it did something: the relay, webhook deliveries, the sweep
and retention, run with nothing to do, log nothing at INFO (a short `make run` logged a
line every few seconds); the sweep and retention, with something done, say what in one
INFO line; the relay and the deliveries, which run after every commit under load, at DEBUG.
(Celery's own lines about these tasks: tests/test_logconfig.py.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from store.db import Database


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    from workers import runtime

    caplog.set_level(logging.DEBUG, logger="workers.tasks")
    yield caplog
    runtime.database().engine.dispose()


def said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "workers.tasks" and r.levelno == level
    ]


def test_housekeeping_with_nothing_to_do_logs_nothing_at_info(
    clean: Database, lines: pytest.LogCaptureFixture
) -> None:
    from workers import tasks

    assert tasks.relay_outbox() == 0
    assert tasks.deliver_webhooks() == 0
    assert not any(tasks.sweep_workflows().values())
    assert not any(tasks.prune().values())

    assert said(lines, logging.INFO) == []
    assert [m for m in said(lines, logging.DEBUG) if m.startswith("prune:")], said(
        lines, logging.DEBUG
    )


def test_a_relay_that_published_says_so_at_debug_only(
    clean: Database, lines: pytest.LogCaptureFixture
) -> None:
    from tests.helpers.retention import Rows
    from workers import tasks

    Rows(clean).event(published_at=None)

    assert tasks.relay_outbox() == 1
    # it runs after every commit under load: a line each time would be most of the log
    assert said(lines, logging.INFO) == []
    assert "relay: 1 events published" in said(lines, logging.DEBUG)
