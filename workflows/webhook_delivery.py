"""The worker's part of client webhooks: deliveries leased when due, each sent once per
attempt with its Standard Webhooks signature (the `standardwebhooks` library), the
attempt recorded, the next one scheduled.

A delivery is one event for one endpoint; its `webhook-id` is the event's stable id on
every attempt. Only a 2xx answer is success; 410 disables the endpoint; otherwise the
next attempt follows the schedule (Svix's, :data:`DELIVERY`), or the receiver's
`Retry-After` if later.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, text
from standardwebhooks.webhooks import Webhook

from providers.errors import parse_retry_after
from providers.http import pooled_transport
from providers.retry import RetryPolicy
from store.db import Database
from store.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from workflows.egress import UnsafeURL, target_of

__all__ = ["DELIVERY", "SCHEDULE", "attempt", "signature", "take_due"]

# Seconds before each attempt after the first (immediately): 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 10 h. Eight attempts in all, over about a day and a half.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
# The schedule as the one retry type: each wait ±10 %, at least the receiver's
# Retry-After; no inline re-try (a failed attempt waits for its turn).
DELIVERY = RetryPolicy(max_attempts=len(SCHEDULE) + 1, table=SCHEDULE, spread=0.1, inline_retries=0)
# A delivery taken for sending is not due again before this (its task may be lost).
LEASE = timedelta(seconds=120)
TIMEOUT = 5.0  # seconds for a whole attempt's answer (CV_WEBHOOK_TIMEOUT_SECONDS)


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
        elif DELIVERY.exhausted(delivery.attempts):
            delivery.status = "exhausted"
            delivery.next_attempt_at = None
        else:
            wait = DELIVERY.backoff(delivery.attempts, retry_after)
            delivery.next_attempt_at = at + timedelta(seconds=wait)
        session.commit()
        return delivery.status
