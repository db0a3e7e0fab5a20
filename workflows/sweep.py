"""The sweeper: the database is the truth and the broker may lose messages, so a periodic
pass finds what should have happened and has not.

1. A worker that stopped beating (workflows.liveness: suspected at one pass, still
   silent at a later one) is dead: a code it claimed and never spent may have left, so
   it is never sent again, and the vehicle fails AUTHORIZATION_INTERRUPTED (retryable:
   its user consents again); so does a claim older than the claim timeout. The steps
   due before its last beat may have been its own (reserved or running): re-driven now,
   once.
2. A step due for longer than the stall deadline (its message was lost) is re-driven.
3. A vehicle still waiting for its user past its time to live fails with
   AUTHORIZATION_EXPIRED.
4. A provider's webhook stored and not processed past the stall deadline (its job was
   lost) is processed again (processing is idempotent).
5. An authorized vehicle whose tokens come due for a refresh (their expiry minus the
   margin) is given its refresh step; a refresh step lost on its way is re-driven by 2.

Each question reads a small partial index; rows are taken with SKIP LOCKED on PostgreSQL,
so any number of sweepers (beat on several hosts) can run at once: a row is handled by
one of them, and a re-driven step is not due again before the stall deadline.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Select, select, text, update
from sqlalchemy.orm import Session, defer

from settings import Settings
from store.crypto import Encrypted
from store.db import Database
from store.models import ConnectedVehicle, ProviderWebhook, RedriveRun, utcnow
from workflows import bulk, steps
from workflows.dispatch import note_task
from workflows.errors import ErrorCode
from workflows.liveness import abandoned_claims_query, confirmed_dead_query, suspects_query
from workflows.machine import Lifecycle
from workflows.registry import Job
from workflows.steps import Step
from workflows.unreadable import alone

__all__ = [
    "SweepReport",
    "expired_query",
    "refresh_due_query",
    "stalled_query",
    "sweep",
    "unprocessed_webhooks_query",
]

log = logging.getLogger(__name__)

CV = ConnectedVehicle
T = TypeVar("T")
_SECRET_COLUMNS = [
    getattr(CV, c.key) for c in CV.__table__.columns if isinstance(c.type, Encrypted)
]


@dataclass
class SweepReport:
    redrive: list[tuple[str, Step]] = field(default_factory=list)
    # Provider webhooks stored and not processed (their job was lost): process them.
    provider_webhooks: list[str] = field(default_factory=list)
    claims_interrupted: int = 0
    dead_workers: int = 0
    expired: int = 0
    refreshes: int = 0
    # Bulk re-drives still running whose job was lost: sent a new one.
    bulk_runs: int = 0


def stalled_query(before: datetime, limit: int) -> Select[ConnectedVehicle]:
    return (
        select(CV)
        .where(text("step IS NOT NULL"))  # only a vehicle still at work has a step
        .where(CV.step_due_at < before)
        .order_by(CV.step_due_at)
        .limit(limit)
    )


def expired_query(before: datetime, limit: int) -> Select[ConnectedVehicle]:
    # From when it became pending (created, or reauthorized), not from its creation.
    return (
        select(CV)
        .where(text("status = 'pending' AND step IS NULL"))
        .where(CV.pending_since < before)
        .order_by(CV.pending_since)
        .limit(limit)
    )


def refresh_due_query(now: datetime, limit: int) -> Select[ConnectedVehicle]:
    return (
        select(CV)
        .where(text("refresh_due_at IS NOT NULL"))
        .where(CV.refresh_due_at <= now, CV.step.is_(None))
        .order_by(CV.refresh_due_at)
        .limit(limit)
    )


def unprocessed_webhooks_query(before: datetime, limit: int) -> Select[ProviderWebhook]:
    return (
        select(ProviderWebhook)
        .where(text("processed_at IS NULL"))
        .where(ProviderWebhook.received_at < before)
        .order_by(ProviderWebhook.received_at)
        .limit(limit)
    )


def _vehicles(
    session: Session, db: Database, query: Select[ConnectedVehicle]
) -> list[ConnectedVehicle]:
    """`_take` for vehicles. The sweep writes plain fields only: encrypted columns are
    loaded if touched, never up front, so a row this process cannot decrypt does not
    stop the pass for the others."""
    query = query.where(CV.unreadable_at.is_(None)).options(*(defer(c) for c in _SECRET_COLUMNS))
    return _take(session, db, query)


def _take(session: Session, db: Database, query: Select[T]) -> list[T]:
    """The rows of `query`, locked (SKIP LOCKED on PostgreSQL)."""
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    return list(session.execute(query).scalars())


def sweep(
    db: Database, settings: Settings, *, now: datetime | None = None, batch: int = 500
) -> SweepReport:
    """One pass; returns what it did. The steps it re-drives are enqueued when its
    transaction commits (workflows.dispatch)."""
    now = now or utcnow()
    report = SweepReport()
    with db.session() as session:
        # Each row on its own (workflows.unreadable): one that cannot be read is marked
        # and skipped, and the pass goes on.
        # Workers found dead (suspected at an earlier pass, silent since): their rows go,
        # so that the claims they signed are taken below; what they were last seen at
        # says which steps may have been theirs.
        last_beats = []
        for worker in _take(session, db, confirmed_dead_query(settings, now, 100)):
            log.warning("worker %s stopped beating: taking back what it held", worker.id)
            last_beats.append(worker.beat_at)
            session.delete(worker)
        report.dead_workers = len(last_beats)
        for worker in _take(session, db, suspects_query(settings, now, 100)):
            worker.suspected_at = now  # dead if still silent at a later pass
        session.flush()

        interrupted = ErrorCode.AUTHORIZATION_INTERRUPTED
        for vehicle in _vehicles(session, db, abandoned_claims_query(settings, now, batch)):
            log.warning(
                "vehicle %s: its code was claimed by %s, which is gone; not sent again",
                vehicle.id,
                vehicle.code_claimed_by or "a worker not known",
            )
            lifecycle = Lifecycle(session, vehicle)
            fail = functools.partial(
                lifecycle.trigger_event, "fail", error=interrupted, retryable=True
            )
            report.claims_interrupted += alone(session, vehicle.id, fail)
        session.flush()

        def redrive(query: Select[ConnectedVehicle]) -> None:
            for vehicle in _vehicles(session, db, query):
                step = Step(str(vehicle.step))
                if alone(session, vehicle.id, functools.partial(steps.redrive, vehicle, now)):
                    report.redrive.append((vehicle.id, step))  # enqueued after the commit

        if last_beats:  # (the latest last beat covers the others' steps too)
            redrive(stalled_query(max(last_beats), batch))
            session.flush()

        stall_deadline = now - timedelta(seconds=settings.stall_seconds)
        redrive(stalled_query(stall_deadline, batch))

        ttl_deadline = now - timedelta(seconds=settings.pending_ttl_seconds)
        expire = ErrorCode.AUTHORIZATION_EXPIRED
        for vehicle in _vehicles(session, db, expired_query(ttl_deadline, batch)):
            lifecycle = Lifecycle(session, vehicle)
            fail = functools.partial(lifecycle.trigger_event, "fail", error=expire)
            report.expired += alone(session, vehicle.id, fail)

        for row in _take(session, db, unprocessed_webhooks_query(stall_deadline, batch)):
            report.provider_webhooks.append(row.id)
            note_task(session, Job.process_provider_webhook, row.id)  # enqueued on commit

        for vehicle in _vehicles(session, db, refresh_due_query(now, batch)):

            def refresh(v: ConnectedVehicle = vehicle) -> None:
                v.refresh_due_at = None  # the step carries it now
                steps.schedule(v, Step.refresh)  # enqueued after the commit below

            report.refreshes += alone(session, vehicle.id, refresh)

        for run_id in bulk.stalled(session, now):
            session.execute(
                update(RedriveRun).where(RedriveRun.id == run_id).values(updated_at=now)
            )
            note_task(session, Job.bulk_redrive, run_id)
            report.bulk_runs += 1
        session.commit()
    return report
