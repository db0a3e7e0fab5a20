"""Client webhooks, checked by a receiver that verifies every delivery with the
`standardwebhooks` library: signatures, ids stable across retries, the retry schedule on
a clock the test moves, 410, replay, and one slow endpoint not holding up another."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from starlette.responses import Response
from starlette.testclient import TestClient

from harness.tenant import Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer, serve_in_thread
from store.db import Database
from store.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from tests.helpers.api import callback_path, create_vehicle, gql
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import Receiver, delivery, endpoint_for
from workflows import webhook_delivery, webhook_endpoints

CREATE_ENDPOINT = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { id url event_types enabled secret } }"""


@pytest.mark.usefixtures("worker")
def test_a_client_gets_its_vehicles_events_signed(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, receiver: Receiver
) -> None:
    admin = tenant.headers("ops", admin=True)
    refused = gql(api, CREATE_ENDPOINT, {"input": {"url": receiver.url}}, tenant.headers())
    assert refused["errors"][0]["extensions"]["code"] == "NOT_ALLOWED"
    made = gql(api, CREATE_ENDPOINT, {"input": {"url": receiver.url}}, admin)
    endpoint = made["data"]["createWebhookEndpoint"]
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"]
    receiver.secret = endpoint["secret"]

    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))

    wait_until(lambda: len(receiver.received) >= 2)
    types = [r["payload"]["type"] for r in receiver.received]
    assert types == ["connected_vehicle.created", "connected_vehicle.authorized"]
    last = receiver.received[-1]["payload"]
    assert last["data"]["id"] == vehicle["id"] and last["data"]["status"] == "authorized"
    assert set(last) == {"type", "timestamp", "data"}
    assert "token" not in json.dumps(receiver.received)  # nothing secret in an event


def test_the_schedule_retries_with_the_same_id_until_2xx(
    clean: Database, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id = endpoint_for(clean, tenant, receiver, [])
    delivery_id = delivery(clean, endpoint_id)
    receiver.answers = [500, 503, 429]
    now = utcnow()

    statuses: list[str] = []
    waits: list[float] = []
    for _ in range(4):
        statuses.append(webhook_delivery.attempt(clean, delivery_id, now=now, allow_private=True))
        with clean.session() as session:
            row = session.get(WebhookDelivery, delivery_id)
            assert row is not None
            if row.next_attempt_at is None:
                break
            waits.append((row.next_attempt_at - now).total_seconds())
            now = row.next_attempt_at

    # 5 s, then 5 min, then 30 min (each within the 10% jitter), then success
    assert statuses == ["pending", "pending", "pending", "succeeded"]
    assert 4.5 <= waits[0] <= 5.5 and 270 <= waits[1] <= 330 and 1620 <= waits[2] <= 1980
    assert {r["id"] for r in receiver.received} == {"evt-1"}  # stable across retries
    with clean.session() as session:
        attempts = session.query(WebhookAttempt).filter_by(delivery_id=delivery_id).all()
    assert [a.status_code for a in attempts] == [500, 503, 429, 200]


def test_after_the_last_attempt_a_delivery_is_exhausted_and_can_be_replayed(
    clean: Database, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id = endpoint_for(clean, tenant, receiver, [])
    delivery_id = delivery(clean, endpoint_id)
    receiver.answers = [500] * (len(webhook_delivery.SCHEDULE) + 1)
    now = utcnow()
    status = "pending"
    while status == "pending":
        status = webhook_delivery.attempt(clean, delivery_id, now=now, allow_private=True)
        now += timedelta(hours=11)
    assert status == "exhausted"
    assert len(receiver.received) == len(webhook_delivery.SCHEDULE) + 1  # eight attempts

    with clean.session() as session:
        webhook_endpoints.replay(session, delivery_id)
    assert webhook_delivery.attempt(clean, delivery_id, allow_private=True) == "succeeded"
    assert {r["id"] for r in receiver.received} == {"evt-1"}


def test_retry_after_is_honoured(clean: Database, tenant: Tenant) -> None:
    async def ask_for_an_hour(scope: Any, receive: Any, send: Any) -> None:
        await Response(status_code=503, headers={"retry-after": "3600"})(scope, receive, send)

    with serve_in_thread(ask_for_an_hour) as url:
        endpoint_id = endpoint_for(clean, tenant, Receiver(url=url), [])
        delivery_id = delivery(clean, endpoint_id)
        now = utcnow()
        status = webhook_delivery.attempt(clean, delivery_id, now=now, allow_private=True)
        assert status == "pending"
    with clean.session() as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None and row.next_attempt_at is not None
        assert (row.next_attempt_at - now).total_seconds() >= 3600  # not the schedule's 5 s


def test_410_disables_the_endpoint(clean: Database, tenant: Tenant, receiver: Receiver) -> None:
    endpoint_id = endpoint_for(clean, tenant, receiver, [])
    first, second = delivery(clean, endpoint_id, "evt-1"), delivery(clean, endpoint_id, "evt-2")
    receiver.answers = [410]
    assert webhook_delivery.attempt(clean, first, allow_private=True) == "disabled"
    # not sent at all:
    assert webhook_delivery.attempt(clean, second, allow_private=True) == "disabled"
    assert len(receiver.received) == 1
    with clean.session() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and not endpoint.enabled


def test_during_a_rotation_both_secrets_sign(
    clean: Database, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint_id = endpoint_for(clean, tenant, receiver, [])
    old = receiver.secret
    with clean.session() as session:
        new = webhook_endpoints.rotate_secret(session, tenant.client_id, endpoint_id).secret
    receiver.secret = old  # a receiver not yet switched over still verifies
    assert (
        webhook_delivery.attempt(clean, delivery(clean, endpoint_id, "evt-1"), allow_private=True)
        == "succeeded"
    )
    receiver.secret = new
    assert (
        webhook_delivery.attempt(clean, delivery(clean, endpoint_id, "evt-2"), allow_private=True)
        == "succeeded"
    )
    assert len(receiver.received[-1]["signature"].split(" ")) == 2


def test_a_slow_endpoint_does_not_hold_up_the_others(
    clean: Database, tenant: Tenant, receiver: Receiver
) -> None:
    slow = Receiver(delay=0.2)
    with serve_in_thread(slow) as url:
        slow.url = url
        slow_id = endpoint_for(clean, tenant, slow, [])
        fast_id = endpoint_for(clean, tenant, receiver, [])
        for i in range(30):
            delivery(clean, slow_id, f"slow-{i}")
        fast = delivery(clean, fast_id, "fast-1")

        taken = webhook_delivery.take_due(clean, per_endpoint=5)

    assert fast in taken  # the fast endpoint's delivery goes in the first batch
    assert len(taken) == 6  # five of the slow one's thirty, and the fast one's
