"""The outbox relay: publishes committed events to Redis pub/sub, at least once, and
hands each to the client's webhook endpoints (a delivery each, in the same transaction).

Each event goes to ``cv:vehicle:<id>`` (subscribers of one vehicle) and ``cv:events``
(everything). An event is marked published only after Redis took it; a crash in between
publishes it again, with the same id, so receivers dedupe on ``id``.
"""

from __future__ import annotations

import json

import redis
from sqlalchemy import Select, select, text, update

from store.db import Database
from store.models import OutboxEvent, utcnow
from workflows import webhooks
from workflows.events import ALL_EVENTS, CHANGED, vehicle_channel

__all__ = ["ALL_EVENTS", "relay_once", "unpublished_query", "vehicle_channel"]


def unpublished_query(limit: int) -> Select[OutboxEvent]:
    """The oldest events not yet published (a partial index holds just those)."""
    return (
        select(OutboxEvent)
        .where(text("published_at IS NULL"))
        .order_by(OutboxEvent.seq)
        .limit(limit)
    )


def _publish(client: redis.Redis[bytes], events: list[OutboxEvent]) -> None:
    pipe = client.pipeline(transaction=False)
    for event in events:
        message = json.dumps(
            {
                "id": event.id,
                "seq": event.seq,
                "type": event.type,
                "vehicle_id": event.vehicle_id,
                "client_id": event.client_id,
                "timestamp": event.created_at.isoformat(),
                "data": event.payload,
                # The request that set it going (operators' correlation; not client data).
                "request_id": event.request_id,
            }
        )
        pipe.publish(vehicle_channel(event.vehicle_id), message)
        pipe.publish(ALL_EVENTS, message)
    # Wake the web's subscriptions again, at least once (the committer's own wake is
    # best effort: its process may die between the commit and the publish).
    for vehicle_id in dict.fromkeys(e.vehicle_id for e in events):
        pipe.publish(CHANGED, vehicle_id)
    pipe.execute()


def relay_once(db: Database, client: redis.Redis[bytes], batch: int = 500) -> int:
    """Publish up to `batch` unpublished events, oldest first; returns how many.

    On PostgreSQL the events are published before they are marked (at least once). On
    SQLite they are marked first and published after the commit: a transaction there
    holds the whole database's write lock, and a worker greenlet that waited on Redis
    while holding it would stall every other one (SQLite waits for its lock in C, which
    gevent cannot switch out of). A publish lost there costs a subscriber its wake-up,
    not the event: subscribers read the outbox, webhooks are rows."""
    with db.session() as session:
        stmt = unpublished_query(batch)
        if db.is_postgres:  # several relays share the work instead of queueing on locks
            stmt = stmt.with_for_update(skip_locked=True)
        events = list(session.execute(stmt).scalars())
        if not events:
            return 0
        if db.is_postgres:
            _publish(client, events)
        session.execute(  # one statement for the batch
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_([e.seq for e in events]))
            .values(published_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        webhooks.fan_out(session, events)  # the clients' endpoints, same transaction
        session.commit()
    if not db.is_postgres:
        _publish(client, events)
    return len(events)
