"""Retention, on PostgreSQL and SQLite, with a clock given to it: what is done with and
older than the retention is deleted in batches; what the relay, a delivery or the sweeper
still needs is kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from store.db import Database
from store.models import (
    OutboxEvent,
    ProviderWebhook,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from tests.helpers.retention import DAYS, NOW, OLD, YOUNG, Rows
from tests.helpers.store import row_counts
from workflows.retention import (
    PruneReport,
    finished_deliveries_query,
    provider_webhooks_query,
    prune,
    published_events_query,
)


@pytest.fixture
def rows(any_db: Database) -> Rows:
    return Rows(any_db)


def ids(db: Database, column: Any) -> set[Any]:
    with db.session() as session:
        return set(session.execute(select(column)).scalars())


def test_events_published_before_the_retention_go_and_the_others_stay(
    any_db: Database, rows: Rows
) -> None:
    old = [rows.event(published_at=OLD) for _ in range(2)]
    unpublished = rows.event(published_at=None)  # the relay still owes it
    young = rows.event(published_at=YOUNG)
    newest = rows.event(published_at=NOW, created_at=NOW)

    report = prune(any_db, days=DAYS, now=NOW)

    assert report.outbox_events == 2
    assert ids(any_db, OutboxEvent.id) == {unpublished, young, newest}
    assert not set(old) & ids(any_db, OutboxEvent.id)


def test_the_newest_event_stays_however_old_so_its_seq_is_never_handed_out_again(
    any_db: Database, rows: Rows
) -> None:
    for _ in range(3):
        rows.event(published_at=OLD)
    highest = max(ids(any_db, OutboxEvent.seq))

    report = prune(any_db, days=DAYS, now=NOW)
    rows.event(published_at=None, created_at=NOW)

    assert report.outbox_events == 2
    assert max(ids(any_db, OutboxEvent.seq)) > highest  # SQLite reuses a deleted max rowid


def test_an_event_that_a_pending_delivery_stands_for_stays(any_db: Database, rows: Rows) -> None:
    awaited = rows.event(published_at=OLD)
    pending = rows.delivery(awaited, "pending", updated_at=OLD)
    delivered = rows.event(published_at=OLD)
    rows.delivery(delivered, "succeeded", updated_at=OLD)
    rows.event(published_at=NOW, created_at=NOW)

    report = prune(any_db, days=DAYS, now=NOW)

    assert (report.outbox_events, report.webhook_deliveries, report.webhook_attempts) == (1, 1, 2)
    assert awaited in ids(any_db, OutboxEvent.id)
    assert delivered not in ids(any_db, OutboxEvent.id)
    assert ids(any_db, WebhookDelivery.id) == {pending}
    assert ids(any_db, WebhookAttempt.delivery_id) == {pending}


def test_finished_deliveries_go_with_their_attempts_and_the_others_stay(
    any_db: Database, rows: Rows
) -> None:
    def event() -> str:
        return rows.event(published_at=YOUNG)

    for status in ("succeeded", "exhausted", "disabled"):  # delivered, or given up
        rows.delivery(event(), status, updated_at=OLD)
    young = rows.delivery(event(), "succeeded", updated_at=YOUNG)
    pending = rows.delivery(event(), "pending", updated_at=OLD)  # still being tried

    report = prune(any_db, days=DAYS, now=NOW)

    assert (report.webhook_deliveries, report.webhook_attempts) == (3, 6)
    assert ids(any_db, WebhookDelivery.id) == {young, pending}
    assert row_counts(any_db)["webhook_attempts"] == 4
    assert ids(any_db, WebhookAttempt.delivery_id) == {young, pending}


def test_processed_provider_webhooks_go_and_unprocessed_ones_stay(
    any_db: Database, rows: Rows
) -> None:
    rows.provider_webhook(received_at=OLD, processed_at=OLD)
    young = rows.provider_webhook(received_at=OLD, processed_at=YOUNG)
    unprocessed = rows.provider_webhook(received_at=OLD, processed_at=None)  # the sweeper's

    report = prune(any_db, days=DAYS, now=NOW)

    assert report.provider_webhooks == 1
    assert ids(any_db, ProviderWebhook.id) == {young, unprocessed}


@pytest.fixture
def commits(any_db: Database) -> Iterator[list[int]]:
    """One entry per transaction committed on the database."""
    seen: list[int] = []

    def on_commit(conn: object) -> None:
        seen.append(1)

    event.listen(any_db.engine, "commit", on_commit)
    yield seen
    event.remove(any_db.engine, "commit", on_commit)


def test_five_rows_of_each_table_in_batches_of_two_take_three_transactions_each(
    any_db: Database, rows: Rows, commits: list[int]
) -> None:
    for _ in range(5):
        rows.delivery(rows.event(published_at=OLD), "succeeded", updated_at=OLD, attempts=1)
        rows.provider_webhook(received_at=OLD, processed_at=OLD)
        rows.step_attempt(ended_at=OLD)
    rows.event(published_at=NOW, created_at=NOW)
    seen: list[tuple[str, int]] = []
    commits.clear()

    report = prune(
        any_db,
        days=DAYS,
        batch=2,
        now=NOW,
        progress=lambda table, r: seen.append((table, getattr(r, table))),
    )

    assert report.counts() == {
        "webhook_attempts": 5,
        "webhook_deliveries": 5,
        "outbox_events": 5,
        "provider_webhooks": 5,
        "step_attempts": 5,
    }
    assert len(commits) == 12 and report.batches == 12
    assert seen == [
        (table, n)
        for table in ("webhook_deliveries", "outbox_events", "provider_webhooks", "step_attempts")
        for n in (2, 4, 5)
    ]
    counts = row_counts(any_db)
    assert (counts["webhook_deliveries"], counts["provider_webhooks"]) == (0, 0)
    assert counts["outbox_events"] == 1


def test_a_retention_of_zero_prunes_nothing(any_db: Database, rows: Rows) -> None:
    rows.delivery(rows.event(published_at=OLD), "succeeded", updated_at=OLD)
    rows.event(published_at=OLD)
    rows.provider_webhook(received_at=OLD, processed_at=OLD)
    before = row_counts(any_db)

    report = prune(any_db, days=0, now=NOW)

    assert report == PruneReport()
    assert row_counts(any_db) == before


def test_a_dry_run_counts_what_a_run_deletes_and_deletes_nothing(
    any_db: Database, rows: Rows
) -> None:
    rows.delivery(rows.event(published_at=OLD), "exhausted", updated_at=OLD, attempts=3)
    rows.delivery(rows.event(published_at=OLD), "pending", updated_at=OLD)
    rows.event(published_at=OLD)
    rows.provider_webhook(received_at=OLD, processed_at=OLD)
    rows.provider_webhook(received_at=OLD, processed_at=None)
    rows.step_attempt(ended_at=OLD)
    rows.step_attempt(ended_at=YOUNG)
    rows.event(published_at=NOW, created_at=NOW)
    before = row_counts(any_db)

    counted = prune(any_db, days=DAYS, now=NOW, dry_run=True)

    assert row_counts(any_db) == before
    assert counted.counts() == {
        "webhook_attempts": 3,
        "webhook_deliveries": 1,
        "outbox_events": 2,
        "provider_webhooks": 1,
        "step_attempts": 1,
    }
    assert prune(any_db, days=DAYS, now=NOW).counts() == counted.counts()


def test_a_spent_time_budget_stops_between_batches_and_the_next_pass_goes_on(
    any_db: Database, rows: Rows
) -> None:
    for _ in range(5):
        rows.provider_webhook(received_at=OLD, processed_at=OLD)

    first = prune(any_db, days=DAYS, batch=2, now=NOW, max_seconds=0)
    second = prune(any_db, days=DAYS, batch=2, now=NOW)

    assert (first.provider_webhooks, first.complete) == (2, False)
    assert (second.provider_webhooks, second.complete) == (3, True)


def test_a_pass_skips_rows_another_transaction_holds_instead_of_waiting(
    clean: Database,
) -> None:
    """PostgreSQL: rows taken with SKIP LOCKED, so passes at once (beat on several hosts,
    and `cv prune`) share the work, and none waits on a row being worked on."""
    rows = Rows(clean)
    for _ in range(5):
        rows.provider_webhook(received_at=OLD, processed_at=OLD)

    # The holder lets go (rollback) before the pool waits for its thread.
    with ThreadPoolExecutor(max_workers=1) as pool, clean.session() as holder:
        stmt = select(ProviderWebhook.id).limit(2).with_for_update()
        held = set(holder.execute(stmt).scalars())
        report = pool.submit(prune, clean, days=DAYS, batch=2, now=NOW).result(timeout=10)
        holder.rollback()

    assert report.provider_webhooks == 3
    assert ids(clean, ProviderWebhook.id) == held


# 20,000 rows of each table, all of them young, a few still owed (unpublished, pending,
# unprocessed).
BULK = (
    """
    INSERT INTO outbox_events (id, type, vehicle_id, client_id, payload, created_at,
                               published_at)
    SELECT 'e' || i, 'connected_vehicle.updated', 'v' || i, :client, '{}', :now,
           CASE WHEN i % 500 = 0 THEN NULL ELSE :now END
    FROM generate_series(1, 20000) AS i
    """,
    """
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, status,
                                    attempts, created_at, updated_at)
    SELECT gen_random_uuid()::text, :endpoint, 'e' || i, 't', '{}',
           CASE WHEN i % 50 = 0 THEN 'pending' ELSE 'succeeded' END, 1, :now, :now
    FROM generate_series(1, 20000) AS i
    """,
    """
    INSERT INTO provider_webhooks (id, provider, delivery_key, client_id, body, received_at,
                                   processed_at)
    SELECT gen_random_uuid()::text, 'Enode', 'k' || i, :client, '[]', :now,
           CASE WHEN i % 500 = 0 THEN NULL ELSE :now END
    FROM generate_series(1, 20000) AS i
    """,
)


def test_the_prune_questions_read_indexes(any_db: Database, rows: Rows) -> None:
    """PostgreSQL: EXPLAIN each question on 20,000 rows of each table (BULK): no
    sequential scan. SQLite: its plan names the partial index too."""
    if any_db.is_postgres:
        with any_db.engine.begin() as conn:
            params = {"client": rows.client_id, "endpoint": rows.endpoint_id, "now": NOW}
            for insert in BULK:
                conn.execute(text(insert), params)
            for table in ("outbox_events", "webhook_deliveries", "provider_webhooks"):
                conn.execute(text(f"ANALYZE {table}"))
    explain = "EXPLAIN " if any_db.is_postgres else "EXPLAIN QUERY PLAN "
    expected = {
        "ix_webhook_deliveries_finished": finished_deliveries_query(OLD, 1000),
        "ix_outbox_published": published_events_query(OLD, 1000),
        "ix_provider_webhooks_processed": provider_webhooks_query(OLD, 1000),
    }
    with any_db.engine.connect() as conn:
        for index, query in expected.items():
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(str(row[-1]) for row in conn.execute(text(explain + sql)))
            assert index in plan, plan
            # Read in the index's order, stopping at the batch: no scan, no sort.
            for scan_or_sort in ("Seq Scan", "Sort", "TEMP B-TREE"):
                assert scan_or_sort not in plan, plan
            if "outbox" in index:  # the pending deliveries it keeps, by their own index
                assert "ix_webhook_deliveries_pending_event" in plan, plan


def test_the_beat_task_prunes_with_the_settings_and_logs_one_line(
    clean: Database, caplog: pytest.LogCaptureFixture
) -> None:
    from celeryconfig import beat_schedule
    from workers import runtime, tasks

    rows = Rows(clean)
    old = utcnow() - timedelta(days=31)
    rows.provider_webhook(received_at=old, processed_at=old)
    rows.provider_webhook(received_at=old, processed_at=None)
    caplog.set_level(logging.INFO, logger="workers.tasks")

    try:
        counts = tasks.prune()
    finally:
        runtime.database().engine.dispose()

    assert counts == {
        "webhook_attempts": 0,
        "webhook_deliveries": 0,
        "outbox_events": 0,
        "provider_webhooks": 1,
        "step_attempts": 0,
    }
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("prune:")]
    assert lines == [
        (
            "prune: 0 webhook_attempts, 0 webhook_deliveries, 0 outbox_events, "
            "1 provider_webhooks, 0 step_attempts deleted (older than 30 days, 0: off)"
        )
    ]
    assert any(entry["task"] == "cv.prune" for entry in beat_schedule.values())
