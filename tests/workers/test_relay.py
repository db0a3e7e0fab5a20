"""The outbox relay (workers.relay), on PostgreSQL and SQLite: each committed event is
published to its vehicle's channel and to everyone's, oldest first, then marked; the web's
waiters are woken once per vehicle; a batch takes the oldest and leaves the rest; each
event becomes a delivery for its client's endpoints in the same pass; and operators'
event stream gets each vehicle's state."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import select

from store.db import Database
from store.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from tests.helpers.retention import Rows
from tests.helpers.wait import wait_until
from workers.relay import ALL_EVENTS, STATE_EVENT, Announcer, relay_once, vehicle_channel
from workflows.events import CHANGED

EVENT_FIELDS = {"id", "seq", "type", "vehicle_id", "client_id", "timestamp", "data", "request_id"}


def vehicle() -> str:
    """A vehicle id of this test's own (Redis's channels are shared by every run)."""
    return f"relay-{uuid.uuid4().hex[:12]}"


def written(
    db: Database,
    vehicle_id: str,
    type_: str = "connected_vehicle.updated",
    *,
    client_id: str = "c-relay",
    request_id: str | None = None,
) -> str:
    """An event committed and not yet published; its id."""
    with db.session() as session:
        row = OutboxEvent(
            type=type_,
            vehicle_id=vehicle_id,
            client_id=client_id,
            payload={"id": vehicle_id, "status": "pending"},
            request_id=request_id,
        )
        session.add(row)
        session.commit()
        return row.id


def published(db: Database, *ids: str) -> set[str]:
    """Those of `ids` marked published."""
    with db.session() as session:
        stmt = select(OutboxEvent.id).where(
            OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_not(None)
        )
        return set(session.execute(stmt).scalars())


class Heard:
    """What Redis's subscribers hear on the relay's channels, for the given vehicles."""

    def __init__(self, url: str, *vehicles: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.vehicles = vehicles
        self.pubsub.subscribe(ALL_EVENTS, CHANGED, *[vehicle_channel(v) for v in vehicles])
        for _ in range(2 + len(vehicles)):  # the subscriptions confirmed: nothing missed
            assert self.pubsub.get_message(timeout=5) is not None
        self.heard: list[tuple[str, Any]] = []

    def drain(self, quiet: float = 0.3) -> list[tuple[str, Any]]:
        """Every message for these vehicles until the channels are quiet."""
        while (message := self.pubsub.get_message(timeout=quiet)) is not None:
            if message["type"] != "message":
                continue
            channel, data = message["channel"].decode(), message["data"].decode()
            if channel == CHANGED:
                if data in self.vehicles:
                    self.heard.append((channel, data))
            else:
                event = json.loads(data)
                if event["vehicle_id"] in self.vehicles:
                    self.heard.append((channel, event))
        return self.heard

    def events(self, channel: str) -> list[dict[str, Any]]:
        return [event for on, event in self.heard if on == channel]

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def events(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    """The events Redis, as the relay gets it."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_each_event_goes_to_its_vehicle_and_to_all_oldest_first_and_is_marked(
    any_db: Database, redis_url: str, events: redis.Redis[bytes]
) -> None:
    one, two = vehicle(), vehicle()
    first = written(any_db, one, request_id="req-1")
    second = written(any_db, two, "connected_vehicle.authorized")
    third = written(any_db, one)
    heard = Heard(redis_url, one, two)
    try:
        count = relay_once(any_db, events)
        heard_once = len(heard.drain())
        again = relay_once(any_db, events)
        heard_after = len(heard.drain())
    finally:
        heard.close()

    assert count == 3
    everyone = heard.events(ALL_EVENTS)
    assert [e["id"] for e in everyone] == [first, second, third]
    assert [e["seq"] for e in everyone] == sorted(e["seq"] for e in everyone)
    assert all(set(e) == EVENT_FIELDS for e in everyone), everyone
    assert everyone[0]["request_id"] == "req-1"
    assert everyone[1]["type"] == "connected_vehicle.authorized"
    assert everyone[1]["data"] == {"id": two, "status": "pending"}  # the payload, as written
    assert [e["id"] for e in heard.events(vehicle_channel(one))] == [first, third]
    assert [e["id"] for e in heard.events(vehicle_channel(two))] == [second]
    # the web's waiters: woken once per vehicle, carrying the id alone
    assert [data for on, data in heard.heard if on == CHANGED] == [one, two]
    assert published(any_db, first, second, third) == {first, second, third}
    # published once: the next pass finds nothing
    assert again == 0
    assert heard_after == heard_once


def test_a_batch_takes_the_oldest_and_leaves_the_rest(
    any_db: Database, events: redis.Redis[bytes]
) -> None:
    car = vehicle()
    ids = [written(any_db, car) for _ in range(5)]

    counts = [relay_once(any_db, events, batch=2)]
    marked_first = published(any_db, *ids)
    counts += [relay_once(any_db, events, batch=2) for _ in range(3)]

    assert counts == [2, 2, 1, 0]
    assert marked_first == set(ids[:2])
    assert published(any_db, *ids) == set(ids)


def test_each_event_becomes_a_delivery_for_its_clients_endpoints_in_the_same_pass(
    any_db: Database, events: redis.Redis[bytes]
) -> None:
    rows = Rows(any_db)  # a client with an endpoint that wants every event
    with any_db.session() as session:
        picky = WebhookEndpoint(
            client_id=rows.client_id,
            url="https://picky.example",
            secret="whsec_y",
            event_types=["connected_vehicle.authorized"],
        )
        session.add(picky)
        session.commit()
        picky_id = picky.id
    car = vehicle()
    updated = written(any_db, car, client_id=rows.client_id)
    authorized = written(any_db, car, "connected_vehicle.authorized", client_id=rows.client_id)
    elsewhere = written(any_db, vehicle(), client_id="a-client-without-endpoints")

    assert relay_once(any_db, events) == 3
    relay_once(any_db, events)  # nothing left: nothing delivered twice

    with any_db.session() as session:
        deliveries = {
            (d.endpoint_id, d.event_id, d.event_type, d.status)
            for d in session.execute(select(WebhookDelivery)).scalars()
        }
    assert deliveries == {
        (rows.endpoint_id, updated, "connected_vehicle.updated", "pending"),
        (rows.endpoint_id, authorized, "connected_vehicle.authorized", "pending"),
        (picky_id, authorized, "connected_vehicle.authorized", "pending"),
    }
    assert elsewhere in published(any_db, elsewhere)


def test_the_batch_is_announced_once_marked(any_db: Database, events: redis.Redis[bytes]) -> None:
    car = vehicle()
    ids = [written(any_db, car) for _ in range(3)]
    told: list[tuple[list[str], set[str]]] = []

    def announce(batch: list[OutboxEvent]) -> None:
        told.append(([e.id for e in batch], published(any_db, *ids)))

    relay_once(any_db, events, announce=announce)
    relay_once(any_db, events, announce=announce)  # nothing to relay: nothing to announce

    assert told == [(ids, set(ids))]


def test_the_announcer_sends_each_vehicles_state_into_the_event_stream(
    stream: list[dict[str, Any]],
) -> None:
    from workers.app import app

    car = vehicle()
    failed = OutboxEvent(
        type="connected_vehicle.failed",
        vehicle_id=car,
        client_id="c-relay",
        payload={"status": "failed", "failure": {"code": "AUTH_CODE_INVALID"}},
    )
    pending = OutboxEvent(
        type="connected_vehicle.created",
        vehicle_id=car,
        client_id="c-relay",
        payload={"status": "pending"},
    )
    announcer = Announcer(app)
    try:
        announcer([pending, failed])

        def states() -> list[tuple[str, str | None, str]]:
            return [
                (e["status"], e["failure_code"], e["event"])
                for e in stream
                if e["type"] == STATE_EVENT and e["vehicle_id"] == car
            ]

        wait_until(lambda: len(states()) == 2)
        time.sleep(0.2)  # and no more
    finally:
        eventer = announcer._eventer
        if eventer is not None:
            eventer.close()
            eventer.connection.release()

    assert states() == [
        ("pending", None, "connected_vehicle.created"),
        ("failed", "AUTH_CODE_INVALID", "connected_vehicle.failed"),
    ]
