"""One vehicle's history, as operators read it (SPEC §8): its state changes (from its
events, with the request that caused each), every attempt of every step, the webhook
deliveries its events made, and the operators' actions on it (single re-drives and its
results in bulk runs). The console's vehicle page and ``cv vehicles show`` print the
same. Nothing here reads a token, a code or a secret: encrypted columns are not loaded,
and events are read by the fields operators need (a payload never carries a secret)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from store.db import Database
from store.models import (
    OutboxEvent,
    RedriveItem,
    RedriveRun,
    StepAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from workflows.audit import actions

__all__ = ["Change", "Delivery", "History", "OperatorEntry", "history"]


@dataclass(frozen=True)
class Change:
    at: datetime
    event: str  # connected_vehicle.failed, …
    status: str | None
    failure: str | None  # CODE (retryable) when failed
    request_id: str | None
    event_id: str


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    last_status: int | None
    updated_at: datetime


@dataclass(frozen=True)
class OperatorEntry:
    at: datetime
    actor: str
    via: str
    action: str
    reason: str | None
    outcome: str | None
    run_id: str | None


@dataclass
class History:
    changes: list[Change] = field(default_factory=list)
    attempts: list[StepAttempt] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    operators: list[OperatorEntry] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": [
                {
                    "at": c.at.isoformat(),
                    "event": c.event,
                    "status": c.status,
                    "failure": c.failure,
                    "request_id": c.request_id,
                }
                for c in self.changes
            ],
            "attempts": [
                {
                    "step": a.step,
                    "attempt": a.attempt,
                    "started_at": a.started_at.isoformat(),
                    "ended_at": a.ended_at.isoformat(),
                    "ms": milliseconds(a),
                    "outcome": a.outcome,
                    "error_code": a.error_code,
                    "error": a.error,
                    "http_status": a.http_status,
                    "endpoint": a.endpoint,
                    "provider_calls": a.provider_calls,
                    "request_id": a.request_id,
                    "task_id": a.task_id,
                }
                for a in self.attempts
            ],
            "deliveries": [
                {
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "url": d.url,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_status": d.last_status,
                }
                for d in self.deliveries
            ],
            "operators": [
                {
                    "at": o.at.isoformat(),
                    "actor": o.actor,
                    "via": o.via,
                    "action": o.action,
                    "reason": o.reason,
                    "outcome": o.outcome,
                    "run_id": o.run_id,
                }
                for o in self.operators
            ],
        }


def without_query(url: str) -> str:
    """A URL as operators see it: scheme, host and path (a query or a user name may
    carry a client's token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def milliseconds(a: StepAttempt) -> int:
    return round((a.ended_at - a.started_at).total_seconds() * 1000)


def history(db: Database, vehicle_id: str, *, limit: int = 200) -> History:
    """The vehicle's history, oldest first, each part at most `limit` (the newest)."""
    h = History()
    with db.session() as session:
        events = session.execute(
            select(
                OutboxEvent.id,
                OutboxEvent.type,
                OutboxEvent.created_at,
                OutboxEvent.request_id,
                OutboxEvent.payload["status"],
                OutboxEvent.payload["failure"],
            )
            .where(OutboxEvent.vehicle_id == vehicle_id)
            .order_by(OutboxEvent.seq.desc())
            .limit(limit)
        ).all()
        for event_id, type_, at, request_id, status, failure in reversed(events):
            words = None
            if isinstance(failure, dict) and failure.get("code"):
                words = failure["code"] + (" (retryable)" if failure.get("retryable") else "")
            h.changes.append(
                Change(
                    at,
                    type_,
                    status if isinstance(status, str) else None,
                    words,
                    request_id,
                    event_id,
                )
            )
        h.attempts = list(
            reversed(
                session.scalars(
                    select(StepAttempt)
                    .where(StepAttempt.vehicle_id == vehicle_id)
                    .order_by(StepAttempt.id.desc())
                    .limit(limit)
                ).all()
            )
        )
        event_ids = [c.event_id for c in h.changes]
        if event_ids:
            rows = session.execute(
                select(
                    WebhookDelivery.event_id,
                    WebhookDelivery.event_type,
                    WebhookEndpoint.url,
                    WebhookDelivery.status,
                    WebhookDelivery.attempts,
                    WebhookDelivery.last_status,
                    WebhookDelivery.updated_at,
                )
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.event_id.in_(event_ids))
                .order_by(WebhookDelivery.created_at)
            ).all()
            h.deliveries = [Delivery(*row) for row in rows]
            for i, d in enumerate(h.deliveries):  # a client's URL may carry a token
                h.deliveries[i] = dataclasses.replace(d, url=without_query(d.url))
        single = session.scalars(actions(vehicle_id=vehicle_id, limit=limit)).all()
        entries = [
            OperatorEntry(a.at, a.actor, a.via, a.action, a.reason, a.outcome, a.run_id)
            for a in single
        ]
        in_bulk = session.execute(
            select(RedriveItem, RedriveRun)
            .join(RedriveRun, RedriveRun.id == RedriveItem.run_id)
            .where(RedriveItem.vehicle_id == vehicle_id)
            .order_by(RedriveRun.created_at.desc())
            .limit(limit)
        ).all()
        for item, run in in_bulk:
            outcome = f"{item.result}: {item.detail}" if item.result else "waiting in the run"
            entries.append(
                OperatorEntry(
                    item.done_at or run.created_at,
                    run.actor,
                    run.via,
                    "bulk_redrive" + (" (forced)" if run.force else ""),
                    run.reason,
                    outcome,
                    run.id,
                )
            )
        h.operators = sorted(entries, key=lambda e: e.at)
    return h
