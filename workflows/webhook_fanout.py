"""The relay's part of client webhooks: each published event becomes a delivery for each
endpoint of its client that wants it (``workflows.webhook_delivery`` sends them)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from store.models import OutboxEvent, WebhookDelivery, WebhookEndpoint, new_id, utcnow

__all__ = ["fan_out"]


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
