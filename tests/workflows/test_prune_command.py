"""`cv prune`, the tool's retention pass, run as operators run it: a line per batch, a
dry run that deletes nothing, 0 days that prune nothing, a --help that says what goes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from harness.procs import BIN, ROOT
from store.db import Database
from store.models import ProviderWebhook, utcnow
from tests.helpers.retention import Rows
from tests.helpers.run import migrated_database
from tests.helpers.store import row_counts


def cv(*argv: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CV_DATABASE_URL": url}
    return subprocess.run(
        [str(BIN / "cv"), *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Database]]:
    """A database with five provider webhooks processed 40 days ago, one not processed,
    and a delivered client webhook of an event published as long ago. Its engine is
    disposed after the test: Python 3.13 warns of a SQLite connection left to the
    garbage collector (a ResourceWarning, an error under the suite's filterwarnings)."""
    url = f"sqlite:///{tmp_path / 'prune.sqlite3'}"
    db = migrated_database(url)
    rows = Rows(db)
    old = utcnow() - timedelta(days=40)
    for _ in range(5):
        rows.provider_webhook(received_at=old, processed_at=old)
    rows.provider_webhook(received_at=old, processed_at=None)
    rows.delivery(rows.event(published_at=old), "succeeded", updated_at=old, attempts=3)
    rows.event(published_at=utcnow(), created_at=utcnow())
    yield url, db
    db.engine.dispose()


def test_a_prune_shows_each_batch_and_keeps_what_is_owed(store: tuple[str, Database]) -> None:
    url, db = store

    result = cv("prune", "--batch", "2", url=url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("deleting what is older than 30 days (before ")
    assert lines[1:] == [
        "  webhook_deliveries: 1 deleted (with 3 attempts)",
        "  outbox_events: 1 deleted",
        "  provider_webhooks: 2 deleted",
        "  provider_webhooks: 4 deleted",
        "  provider_webhooks: 5 deleted",
        (
            "deleted 3 webhook_attempts, 1 webhook_deliveries, 1 outbox_events, "
            "5 provider_webhooks, 0 step_attempts in 5 batches"
        ),
    ]
    counts = row_counts(db)
    assert (counts["provider_webhooks"], counts["outbox_events"]) == (1, 1)
    with db.session() as session:
        left = session.query(ProviderWebhook).one()
        assert left.processed_at is None


def test_a_dry_run_counts_and_deletes_nothing(store: tuple[str, Database]) -> None:
    url, db = store
    before = row_counts(db)

    result = cv("prune", "--dry-run", url=url)

    assert result.returncode == 0, result.stderr
    assert "would delete, older than 30 days" in result.stdout
    assert (
        "3 webhook_attempts, 1 webhook_deliveries, 1 outbox_events, 5 provider_webhooks, "
        "0 step_attempts" in result.stdout
    )
    assert row_counts(db) == before


def test_zero_days_prune_nothing_and_more_days_keep_younger_rows(
    store: tuple[str, Database],
) -> None:
    url, db = store
    before = row_counts(db)

    off = cv("prune", "--days", "0", url=url)
    longer = cv("prune", "--days", "41", url=url)

    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == "retention is 0 days (off): nothing deleted"
    assert longer.returncode == 0, longer.stderr
    assert "deleted 0 webhook_attempts, 0 webhook_deliveries" in longer.stdout
    after = row_counts(db)
    assert after.pop("operator_actions") == before.pop("operator_actions") + 1  # audited
    assert after == before


def test_the_help_says_what_goes_and_what_never_does() -> None:
    result = cv("prune", "--help", url="sqlite:///unused.sqlite3")

    assert result.returncode == 0, result.stderr
    for words in ("--days", "--batch", "--dry-run", "CV_RETENTION_DAYS", "Never: unpublished"):
        assert words in result.stdout
