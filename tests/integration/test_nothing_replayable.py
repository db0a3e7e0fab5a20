"""Nothing an attacker could replay leaves the service (SPEC §4): a pending vehicle's
authorization URL carries its OAuth state, and whoever holds the URL can consent with an
account of their choosing. Events (the outbox, client webhooks, Redis pub/sub) say the
URL is ready; only the API hands it out, to the vehicle's owner."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis
from starlette.testclient import TestClient

from harness.tenant import Tenant
from providers.fakes.serve import FakeServer
from store.models import OutboxEvent
from tests.helpers.api import create_vehicle, gql
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import Receiver, endpoint_for
from workflows.events import ALL_EVENTS

pytestmark = pytest.mark.usefixtures("worker")

LABEL = """mutation($input: UpdateConnectedVehicleInput!) {
  updateConnectedVehicle(input: $input) { id } }"""


def state_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["state"]


def test_no_event_carries_the_oauth_state(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, receiver: Receiver, redis_url: str
) -> None:
    endpoint_for(tenant.db, tenant, receiver, [])
    published: list[str] = []
    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.subscribe(ALL_EVENTS)

    def listen() -> None:
        for message in listener.listen():  # type: ignore[no-untyped-call]
            if message["type"] == "message":
                published.append(message["data"].decode())

    threading.Thread(target=listen, daemon=True).start()

    vehicle = create_vehicle(api, tenant.headers())
    gql(api, LABEL, {"input": {"id": vehicle["id"], "label": "Blue"}}, tenant.headers())
    state = state_of(vehicle["authorization_url"])

    wait_until(lambda: len(receiver.received) >= 2 and len(published) >= 2)
    with tenant.db.session() as session:
        payloads = [e.payload for e in session.query(OutboxEvent).all()]
    everything: list[Any] = [payloads, receiver.received, published]
    assert state not in json.dumps(everything)
    for payload in payloads:
        assert payload["authorization_url"] is None
        assert payload["authorization_ready"] is True
    listener.close()


def test_the_owner_gets_the_url_from_the_api_and_the_subscription(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    got = gql(
        api,
        "query($id: ID!) { connectedVehicle(id: $id) { authorization_url } }",
        {"id": vehicle["id"]},
        tenant.headers(),
    )
    assert got["data"]["connectedVehicle"]["authorization_url"] == vehicle["authorization_url"]

    headers = tenant.headers()
    with api.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": headers})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": "subscription($id: ID!) { connectedVehicle(id: $id) "
                    "{ label authorization_url } }",
                    "variables": {"id": vehicle["id"]},
                },
            }
        )
        first = ws.receive_json()["payload"]["data"]["connectedVehicle"]
        gql(api, LABEL, {"input": {"id": vehicle["id"], "label": "Blue"}}, headers)
        change = ws.receive_json()["payload"]["data"]["connectedVehicle"]
        ws.send_json({"id": "1", "type": "complete"})

    assert first["authorization_url"] == vehicle["authorization_url"]
    assert (change["label"], change["authorization_url"]) == ("Blue", vehicle["authorization_url"])
