"""The outbox relay: publishes committed events to Redis pub/sub, at least once, and
hands each to the client's webhook endpoints (a delivery each, in the same transaction).

Each event goes to ``cv:vehicle:<id>`` (subscribers of one vehicle) and ``cv:events``
(everything). An event is marked published only after Redis took it; a crash in between
publishes it again, with the same id, so receivers dedupe on ``id``.

The operators' event stream (Celery events: Flower, ``celery events``) gets each event's
vehicle state too, as a ``cv-vehicle-state`` event (:class:`Announcer`): from here, off
the requests' and the steps' paths, once per batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery
from sqlalchemy import Select, select, text, update

from store.db import Database
from store.models import OutboxEvent, utcnow
from workflows import webhook_fanout
from workflows.events import ALL_EVENTS, CHANGED, vehicle_channel

__all__ = [
    "ALL_EVENTS",
    "STATE_EVENT",
    "Announcer",
    "relay_once",
    "unpublished_query",
    "vehicle_channel",
]

log = logging.getLogger(__name__)

# The custom Celery event of a vehicle's state (Flower, `celery events`).
STATE_EVENT = "cv-vehicle-state"


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


class Announcer:
    """Sends each relayed event's vehicle state into Celery's event stream, over one
    connection of the process (opened on first use, again after a failure). Best effort:
    the outbox is the record; this is for watching."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._eventer: Any = None  # Celery's EventDispatcher: not thread-safe, so locked
        self._lock = threading.Lock()

    def __call__(self, events: list[OutboxEvent]) -> None:
        try:
            with self._lock:
                if self._eventer is None:
                    self._eventer = self.app.events.Dispatcher(
                        self.app.connection_for_write(), enabled=True
                    )
                for event in events:
                    failure = event.payload.get("failure") or {}
                    self._eventer.send(
                        STATE_EVENT,
                        vehicle_id=event.vehicle_id,
                        status=event.payload.get("status"),
                        failure_code=failure.get("code"),
                        event=event.type,
                    )
        except Exception as exc:
            log.warning("could not announce vehicle states (%s)", type(exc).__name__)
            with self._lock:
                eventer, self._eventer = self._eventer, None
            if eventer is not None:
                with contextlib.suppress(Exception):
                    eventer.close()
                    eventer.connection.release()


def relay_once(
    db: Database,
    client: redis.Redis[bytes],
    batch: int = 500,
    *,
    announce: Callable[[list[OutboxEvent]], None] | None = None,
) -> int:
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
        webhook_fanout.fan_out(session, events)  # the clients' endpoints, same transaction
        session.commit()
    if not db.is_postgres:
        _publish(client, events)
    if announce is not None:
        announce(events)
    return len(events)
