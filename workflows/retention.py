"""Retention: rows the service is done with are deleted after a while, in small batches.

What is pruned, once older than the retention (CV_RETENTION_DAYS):

1. Client webhook deliveries that are finished (`succeeded`, `exhausted`, `disabled`:
   never sent again unless replayed), by when they finished (`updated_at`), with their
   attempts (children first: an attempt references its delivery).
2. Outbox events published that long ago, except one that a delivery not finished
   (`pending`) stands for, and the newest event of all: SQLite would hand a deleted
   highest `seq` out again, and subscribers read the outbox by `seq`.
3. Provider webhooks processed that long ago (a replay of one is then stored and
   processed again: processing is idempotent).
4. Step attempts (the operators' history of a vehicle) that ended that long ago: kept
   as long as the events they sit beside.

Unpublished events and unprocessed provider webhooks are never pruned: the relay and the
sweeper still owe them. Each batch is one short transaction of at most `batch` rows
(taken with SKIP LOCKED on PostgreSQL: passes running at once share the work), and each
question reads a partial index that holds only its candidates (migration 0011).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, delete, exists, func, select, text
from sqlalchemy.orm import Session

from store.db import Database
from store.models import (
    OutboxEvent,
    ProviderWebhook,
    StepAttempt,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)

__all__ = [
    "PruneReport",
    "finished_deliveries_query",
    "provider_webhooks_query",
    "prune",
    "published_events_query",
]

# The partial indexes' predicates, spelled as they are (the planner matches them).
_FINISHED = text("status <> 'pending'")
_PUBLISHED = text("published_at IS NOT NULL")
_PROCESSED = text("processed_at IS NOT NULL")


@dataclass
class PruneReport:
    """Rows deleted (in a dry run: that would be), per table, and the batches it took."""

    webhook_attempts: int = 0
    webhook_deliveries: int = 0
    outbox_events: int = 0
    provider_webhooks: int = 0
    step_attempts: int = 0
    batches: int = 0
    # False when the time budget ran out first: the next pass takes the rest.
    complete: bool = True

    def counts(self) -> dict[str, int]:
        return {
            "webhook_attempts": self.webhook_attempts,
            "webhook_deliveries": self.webhook_deliveries,
            "outbox_events": self.outbox_events,
            "provider_webhooks": self.provider_webhooks,
            "step_attempts": self.step_attempts,
        }


# Told after each batch: the table just pruned, and the report so far.
Progress = Callable[[str, PruneReport], None]


# -- the questions: each reads its partial index, oldest first ------------------------------


def finished_deliveries_query(before: datetime, limit: int | None) -> Select[str]:
    return (
        select(WebhookDelivery.id)
        .where(_FINISHED)
        .where(WebhookDelivery.updated_at < before)
        .order_by(WebhookDelivery.updated_at)
        .limit(limit)
    )


def _still_delivering() -> ColumnElement[bool]:
    """The event has a delivery not finished (ix_webhook_deliveries_pending_event)."""
    return exists().where(
        text("webhook_deliveries.status = 'pending'"), WebhookDelivery.event_id == OutboxEvent.id
    )


def published_events_query(before: datetime, limit: int | None) -> Select[int]:
    newest = select(func.max(OutboxEvent.seq)).scalar_subquery()
    return (
        select(OutboxEvent.seq)
        .where(_PUBLISHED)
        .where(OutboxEvent.published_at < before)
        .where(OutboxEvent.seq < newest)
        .where(~_still_delivering())
        .order_by(OutboxEvent.published_at)
        .limit(limit)
    )


def provider_webhooks_query(before: datetime, limit: int | None) -> Select[str]:
    return (
        select(ProviderWebhook.id)
        .where(_PROCESSED)
        .where(ProviderWebhook.processed_at < before)
        .order_by(ProviderWebhook.processed_at)
        .limit(limit)
    )


def step_attempts_query(before: datetime, limit: int | None) -> Select[int]:
    return (
        select(StepAttempt.id)
        .where(StepAttempt.ended_at < before)
        .order_by(StepAttempt.ended_at)
        .limit(limit)
    )


# -- one batch's deletes: the conditions again, so a row changed since it was read stays ----


def _delete_deliveries(session: Session, ids: Sequence[Any], report: PruneReport) -> None:
    report.webhook_attempts += _rows(
        session, delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
    )
    report.webhook_deliveries += _rows(
        session, delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids), _FINISHED)
    )


def _delete_events(session: Session, seqs: Sequence[Any], report: PruneReport) -> None:
    report.outbox_events += _rows(
        session, delete(OutboxEvent).where(OutboxEvent.seq.in_(seqs), ~_still_delivering())
    )


def _delete_provider_webhooks(session: Session, ids: Sequence[Any], report: PruneReport) -> None:
    report.provider_webhooks += _rows(
        session, delete(ProviderWebhook).where(ProviderWebhook.id.in_(ids), _PROCESSED)
    )


def _delete_step_attempts(session: Session, ids: Sequence[Any], report: PruneReport) -> None:
    report.step_attempts += _rows(session, delete(StepAttempt).where(StepAttempt.id.in_(ids)))


def _rows(session: Session, stmt: Any) -> int:
    """Rows the DELETE took (not the keys it was given: a concurrent pass may have)."""
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(cast("CursorResult[Any]", result).rowcount)


Query = Callable[[datetime, int | None], Select[Any]]
Deleter = Callable[[Session, Sequence[Any], PruneReport], None]

# Children before parents: a delivery's attempts go with it, and a delivery goes before
# the event it stands for could.
_TABLES: tuple[tuple[str, Query, Deleter], ...] = (
    ("webhook_deliveries", finished_deliveries_query, _delete_deliveries),
    ("outbox_events", published_events_query, _delete_events),
    ("provider_webhooks", provider_webhooks_query, _delete_provider_webhooks),
    ("step_attempts", step_attempts_query, _delete_step_attempts),
)


def prune(
    db: Database,
    *,
    days: float,
    batch: int = 1000,
    now: datetime | None = None,
    dry_run: bool = False,
    max_seconds: float | None = None,
    progress: Progress | None = None,
) -> PruneReport:
    """Delete what is older than `days` (0: nothing at all), at most `batch` rows of a
    table per transaction; returns the counts. `dry_run` counts, and deletes nothing.
    `max_seconds`: no new batch once it is spent (the first always runs)."""
    report = PruneReport()
    if days <= 0:
        return report
    before = (now or utcnow()) - timedelta(days=days)
    if dry_run:
        return _count_all(db, before)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    for table, query, delete_batch in _TABLES:
        while True:
            if deadline is not None and report.batches and time.monotonic() >= deadline:
                report.complete = False
                return report
            with db.session() as session:
                stmt = query(before, batch)
                if db.is_postgres:
                    stmt = stmt.with_for_update(skip_locked=True)
                keys = list(session.execute(stmt).scalars())
                if keys:
                    delete_batch(session, keys, report)
                    session.commit()
            if keys:
                report.batches += 1
                if progress is not None:
                    progress(table, report)
            if len(keys) < batch:
                break
    return report


def _count_all(db: Database, before: datetime) -> PruneReport:
    report = PruneReport()
    with db.session() as session:
        deliveries = finished_deliveries_query(before, None).order_by(None)
        report.webhook_deliveries = _count(session, deliveries)
        report.webhook_attempts = _count(
            session, select(WebhookAttempt.id).where(WebhookAttempt.delivery_id.in_(deliveries))
        )
        report.outbox_events = _count(session, published_events_query(before, None))
        report.provider_webhooks = _count(session, provider_webhooks_query(before, None))
        report.step_attempts = _count(session, step_attempts_query(before, None))
    return report


def _count(session: Session, query: Select[Any]) -> int:
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int(session.execute(counted).scalar_one())
