"""Client webhooks: endpoints, deliveries on a schedule kept in the database, Standard
Webhooks signatures (the `standardwebhooks` library), attempts recorded, replay.

A delivery is one event for one endpoint; its `webhook-id` is the event's stable id on
every attempt. Only a 2xx answer is success; 410 disables the endpoint; otherwise the
next attempt follows the schedule (Svix's), or the provider's `Retry-After` if later.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from providers.errors import parse_retry_after
from providers.http import pooled_transport
from store.db import Database
from store.models import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    new_id,
    utcnow,
)
from workflows.egress import UnsafeURL, target_of
from workflows.errors import DomainError, ErrorCode

__all__ = [
    "EVENT_TYPES",
    "SCHEDULE",
    "attempt",
    "create_endpoint",
    "delete_endpoint",
    "fan_out",
    "replay",
    "rotate_secret",
    "signature",
    "take_due",
]

EVENT_TYPES = (
    "connected_vehicle.created",
    "connected_vehicle.updated",
    "connected_vehicle.pending",
    "connected_vehicle.authorized",
    "connected_vehicle.failed",
    "connected_vehicle.pending_removal",
    "connected_vehicle.removed",
    "connected_vehicle.deauthorized",
    "connected_vehicle.data_updated",  # a new snapshot of the car's data
)
# Seconds before each attempt after the first (immediately): 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h. Eight attempts in all, over about a day and a half.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
# A delivery taken for sending is not due again before this (its task may be lost).
LEASE = timedelta(seconds=120)
ROTATION_GRACE = timedelta(hours=24)
TIMEOUT = 5.0  # seconds for a whole attempt's answer (CV_WEBHOOK_TIMEOUT_SECONDS)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check(url: str, event_types: list[str], allow_private: bool) -> None:
    if len(url) > 1000:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="url is longer than 1000 characters")
    try:
        target_of(url, allow_private=allow_private)  # SPEC §4: checked again at delivery
    except UnsafeURL as exc:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message=str(exc)) from exc
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT, message=f"unknown event types: {', '.join(unknown)}"
        )


def create_endpoint(
    session: Session,
    client_id: str,
    url: str,
    event_types: list[str] | None = None,
    *,
    allow_private: bool = False,
) -> WebhookEndpoint:
    """`allow_private`: CV_WEBHOOKS_ALLOW_PRIVATE (http and loopback, for development)."""
    types = list(dict.fromkeys(event_types or []))
    _check(url, types, allow_private)
    endpoint = WebhookEndpoint(
        client_id=client_id, url=url, secret=new_secret(), event_types=types, enabled=True
    )
    session.add(endpoint)
    session.commit()
    return endpoint


def _owned(session: Session, client_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.client_id != client_id:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="no such webhook endpoint")
    return endpoint


def rotate_secret(session: Session, client_id: str, endpoint_id: str) -> WebhookEndpoint:
    """A new secret; the old one signs too for a day, so receivers can switch over."""
    endpoint = _owned(session, client_id, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_GRACE
    endpoint.secret = new_secret()
    session.commit()
    return endpoint


def delete_endpoint(session: Session, client_id: str, endpoint_id: str) -> None:
    endpoint = _owned(session, client_id, endpoint_id)
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    session.commit()


def fan_out(session: Session, events: Sequence[OutboxEvent]) -> int:
    """A delivery of each event for each endpoint of its client that wants it, in the
    caller's transaction; an event published again adds none twice. Two reads and one
    bulk insert per batch, whatever its size: the endpoints of every client in it, and
    the deliveries that exist already."""
    if not events:
        return 0
    clients = {e.client_id for e in events}
    endpoints: dict[str, list[WebhookEndpoint]] = {}
    for endpoint in session.execute(
        select(WebhookEndpoint).where(
            WebhookEndpoint.client_id.in_(clients), WebhookEndpoint.enabled.is_(True)
        )
    ).scalars():
        endpoints.setdefault(endpoint.client_id, []).append(endpoint)
    if not endpoints:
        return 0
    wanted = [e for e in events if e.client_id in endpoints]
    existing = {
        (endpoint_id, event_id)
        for endpoint_id, event_id in session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.event_id).where(
                WebhookDelivery.event_id.in_([e.id for e in wanted])
            )
        )
    }
    now = utcnow()
    rows = []
    for event in wanted:
        body = json.dumps(
            {"type": event.type, "timestamp": event.created_at.isoformat(), "data": event.payload}
        )
        for endpoint in endpoints[event.client_id]:
            if endpoint.event_types and event.type not in endpoint.event_types:
                continue
            if (endpoint.id, event.id) in existing:
                continue
            rows.append(
                {
                    "id": new_id(),
                    "endpoint_id": endpoint.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "body": body,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        session.execute(insert(WebhookDelivery), rows)
    return len(rows)


def take_due(
    db: Database, *, now: datetime | None = None, limit: int = 200, per_endpoint: int = 5
) -> list[str]:
    """Lease the deliveries due now, at most `per_endpoint` per endpoint, so that one
    slow or dead endpoint never holds back the others; returns their ids."""
    now = now or utcnow()
    with db.session() as session:
        stmt = (
            select(WebhookDelivery)
            .where(text("status = 'pending'"))
            .where(WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        if db.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        taken: list[str] = []
        per: dict[str, int] = {}
        for delivery in session.execute(stmt).scalars():
            if per.get(delivery.endpoint_id, 0) >= per_endpoint:
                continue
            per[delivery.endpoint_id] = per.get(delivery.endpoint_id, 0) + 1
            delivery.next_attempt_at = now + LEASE
            taken.append(delivery.id)
        session.commit()
        return taken


def signature(endpoint: WebhookEndpoint, msg_id: str, at: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,…` per live secret (two during a rotation)."""
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > at:
        keys.append(endpoint.previous_secret)
    return " ".join(Webhook(key).sign(msg_id, at, body) for key in keys)


def attempt(
    db: Database,
    delivery_id: str,
    *,
    now: datetime | None = None,
    transport: httpx.BaseTransport | None = None,
    allow_private: bool = False,
    timeout: float = TIMEOUT,
) -> str:
    """Send one delivery once and record the attempt; returns its status afterwards.
    The URL is checked again (it may resolve elsewhere since), and the request goes to
    the address checked, following no redirect."""
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return delivery.status if delivery else "missing"
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        if not endpoint.enabled:
            delivery.status = "disabled"
            session.commit()
            return delivery.status
        at = now or utcnow()  # the schedule's clock (a test moves it)
        sent = utcnow()  # the signature's: receivers check it against theirs
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(sent.timestamp())),
            "webhook-signature": signature(endpoint, delivery.event_id, sent, delivery.body),
        }
        url, body = endpoint.url, delivery.body
        session.commit()

    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    try:
        target = target_of(url, allow_private=allow_private)
        # Over the process's pooled transport of that address (not closed: it is shared).
        http = httpx.Client(
            timeout=timeout,
            transport=transport or pooled_transport(target.url),
            follow_redirects=False,
        )
        response = http.post(
            target.url,
            content=body.encode(),
            headers={**headers, "host": target.host},
            extensions={"sni_hostname": target.sni},
        )
        status_code = response.status_code
        retry_after = parse_retry_after(response)
    except UnsafeURL as exc:
        error = f"refused: {exc}"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    latency_ms = int((time.monotonic() - started) * 1000)

    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
        if delivery is None or endpoint is None or delivery.status != "pending":
            return delivery.status if delivery else "missing"
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempted_at=at,
                status_code=status_code,
                latency_ms=latency_ms,
                error=error,
            )
        )
        delivery.attempts += 1
        delivery.last_status = status_code
        delivery.last_error = error or (None if status_code and status_code < 300 else "non-2xx")
        delivery.updated_at = utcnow()
        if status_code is not None and 200 <= status_code < 300:
            delivery.status = "succeeded"
            delivery.next_attempt_at = None
        elif status_code == 410:  # Gone: the receiver asks for no more
            delivery.status = "disabled"
            delivery.next_attempt_at = None
            endpoint.enabled = False
            endpoint.disabled_reason = "the endpoint answered 410 Gone"
        elif delivery.attempts > len(SCHEDULE):
            delivery.status = "exhausted"
            delivery.next_attempt_at = None
        else:
            wait = SCHEDULE[delivery.attempts - 1] * random.uniform(0.9, 1.1)
            if retry_after is not None:
                wait = max(wait, retry_after)
            delivery.next_attempt_at = at + timedelta(seconds=wait)
        session.commit()
        return delivery.status


def replay(session: Session, delivery_id: str) -> WebhookDelivery:
    """Send an exhausted (or any) delivery again, on a fresh schedule, with the same
    `webhook-id`; its past attempts stay on record."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="no such webhook delivery")
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="the endpoint is disabled")
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.updated_at = utcnow()
    session.commit()
    return delivery
