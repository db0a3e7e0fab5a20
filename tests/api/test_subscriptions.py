"""Subscriptions share the process's one listener on CHANGED (no Redis connection and no
database poll of their own), and a WebSocket connection holds a bounded number of them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from harness.tenant import Tenant
from settings import Settings
from store.db import Database
from store.models import OutboxEvent
from tests.helpers.api import api_with, create_vehicle, gql
from tests.helpers.store import add_vehicle, statements
from tests.helpers.wait import wait_until
from tests.helpers.ws import SUBSCRIBE, connect, init, subscribe
from workers.relay import relay_once
from workflows.events import CHANGED, vehicle_channel

LABEL = """mutation($input: UpdateConnectedVehicleInput!) {
  updateConnectedVehicle(input: $input) { id label } }"""


def test_subscriptions_share_one_listener_and_read_nothing_while_idle(
    tenant: Tenant, settings: Settings, redis_url: str
) -> None:
    headers = tenant.headers()
    events = redis.Redis.from_url(settings.events_url)
    with api_with(settings, subscription_recheck_seconds=60) as api:
        wakeups = api.app.state.graphql.wakeups  # type: ignore[attr-defined]
        ids = [create_vehicle(api, headers)["id"] for _ in range(5)]
        with connect(api) as ws:
            init(ws, headers)
            for n, vehicle_id in enumerate(ids):
                subscribe(ws, str(n), vehicle_id)
            firsts = {ws.receive_json()["payload"]["data"]["connectedVehicle"]["id"] for _ in ids}
            wait_until(lambda: wakeups.waiting == len(ids) and wakeups.subscribed.is_set())
            time.sleep(1.0)  # the wakes of the listener's start and of the creations

            with statements(api.app.state.db) as sent:  # type: ignore[attr-defined]
                time.sleep(2.5)  # the old subscription read every 2 s
                idle = list(sent)
            listeners = [c for c in events.client_list() if c["name"] == wakeups.client_name]
            per_vehicle = events.pubsub_numsub(*[vehicle_channel(i) for i in ids])

            gql(api, LABEL, {"input": {"id": ids[2], "label": "Blue"}}, headers)
            change = ws.receive_json()
            for n in range(len(ids)):
                ws.send_json({"id": str(n), "type": "complete"})
        wait_until(lambda: wakeups.waiting == 0)
    events.close()

    assert firsts == set(ids)
    assert idle == []
    assert [(c["sub"], c["psub"]) for c in listeners] == [("1", "0")]  # one, on CHANGED
    assert all(count == 0 for _, count in per_vehicle)
    assert wakeups.subscriptions == 1
    assert change["id"] == "2"
    assert change["payload"]["data"]["connectedVehicle"] == {"id": ids[2], "label": "Blue"}


def test_a_connection_holds_a_bounded_number_of_subscriptions(
    tenant: Tenant, settings: Settings, redis_url: str
) -> None:
    headers = tenant.headers()
    with api_with(settings, subscriptions_per_connection=2) as api:
        vehicle_id = create_vehicle(api, headers)["id"]
        with connect(api) as ws:
            init(ws, headers)
            subscribe(ws, "a", vehicle_id)
            subscribe(ws, "b", vehicle_id)
            firsts = [ws.receive_json() for _ in range(2)]
            subscribe(ws, "c", vehicle_id)
            refused = ws.receive_json()
            ws.send_json({"id": "a", "type": "complete"})
            wait_until(lambda: api.app.state.graphql.wakeups.waiting == 1)  # type: ignore[attr-defined]
            subscribe(ws, "d", vehicle_id)  # room again: the connection was kept
            again = ws.receive_json()

    assert sorted(m["id"] for m in firsts) == ["a", "b"]
    assert refused["id"] == "c" and refused["type"] == "error"
    # a clear error: which limit and its value, with a code (Strawberry's had neither)
    assert "at most 2 operations" in refused["payload"][0]["message"]
    assert refused["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert again["id"] == "d" and again["type"] == "next"


def test_the_relay_wakes_the_subscriptions_again(
    clean: Database, tenant: Tenant, settings: Settings, redis_url: str
) -> None:
    """The committer's wake is best effort (its process may die after the commit); the
    relay, which publishes every event at least once, wakes the vehicle's readers too."""
    vehicle_id = add_vehicle(clean, client_id=tenant.client_id, user_id="user-1")
    events = redis.Redis.from_url(settings.events_url)
    listener = events.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(CHANGED)
    with clean.session() as session:
        session.add(
            OutboxEvent(
                id="evt-relay-wake",
                type="connected_vehicle.updated",
                vehicle_id=vehicle_id,
                client_id=tenant.client_id,
                payload={"id": vehicle_id},
            )
        )
        session.commit()
    while listener.get_message(timeout=0.2) is not None:
        pass  # the insert's own wakes, if any
    relay_once(clean, events)
    woken = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and vehicle_id not in woken:
        message = listener.get_message(timeout=0.5)
        if message is not None:
            woken.append(message["data"].decode())
    listener.close()
    events.close()

    assert vehicle_id in woken


def test_a_subscription_over_http_is_a_400(api: TestClient, tenant: Tenant) -> None:
    headers = tenant.headers()
    vehicle_id = create_vehicle(api, headers)["id"]
    answer = api.post(
        "/graphql", json={"query": SUBSCRIBE, "variables": {"id": vehicle_id}}, headers=headers
    )
    assert answer.status_code == 400, answer.text
    assert "subscriptions are not allowed" in answer.text


def test_an_unexpected_error_in_a_running_subscription_is_internal_and_says_nothing(
    api: TestClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fault injected into the change read (the database answering nonsense): the
    subscriber gets INTERNAL_SERVER_ERROR without the detail; the log has it."""
    from api.graphql import subscriptions

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("detail-that-must-not-reach-the-client")

    monkeypatch.setattr(subscriptions, "_changes", broken)
    headers = tenant.headers()
    vehicle_id = create_vehicle(api, headers)["id"]
    with connect(api) as ws:
        init(ws, headers)
        subscribe(ws, "1", vehicle_id)
        assert ws.receive_json()["type"] == "next"
        gql(api, LABEL, {"input": {"id": vehicle_id, "label": "Blue"}}, headers)
        failed = ws.receive_json()

    payload = json.dumps(failed)
    assert "detail-that-must-not-reach-the-client" not in payload
    errors = failed["payload"] if failed["type"] == "error" else failed["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR", failed
    assert "detail-that-must-not-reach-the-client" in caplog.text
