"""A request's id goes with everything it sets in motion: the lines its tasks log (the
session's real worker), the outbox events it writes and the relay's messages. A caller's
X-Request-ID is kept when it is plain, replaced when it is not. The lines name the client
too: the web's once the caller is authenticated, a task's once its step loads the
vehicle."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import select
from starlette.testclient import TestClient

import logconfig
from store.models import OutboxEvent
from tests.api.test_callback import callback_path
from tests.fixtures import (
    FakeServer,
    Tenant,
    consent,
    create_vehicle,
    gql,
    vehicle_row,
    wait_until,
)
from tests.workflows.test_unreadable import written_under_another_key
from workflows.events import ALL_EVENTS

pytestmark = pytest.mark.usefixtures("worker")


class JsonLines:
    """Every line logged in this process (the web in process, the worker's threads), as
    production writes it: logconfig's JSON handler on the root logger."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logconfig.make_handler("json", self.stream)

    def __call__(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def json_lines(caplog: pytest.LogCaptureFixture) -> Iterator[JsonLines]:
    caplog.set_level(logging.INFO)  # the root's level, restored after the test
    lines = JsonLines()
    logging.getLogger().addHandler(lines.handler)
    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(lines.handler)


def event_rows(tenant: Tenant, vehicle_id: str) -> dict[str, str | None]:
    with tenant.db.session() as session:
        rows = session.execute(
            select(OutboxEvent.type, OutboxEvent.request_id)
            .where(OutboxEvent.vehicle_id == vehicle_id)
            .order_by(OutboxEvent.seq)
        )
        return {type_: request_id for type_, request_id in rows}


def relayed(pubsub: Any, vehicle_id: str, type_: str) -> dict[str, Any]:
    """The relay's message of that event (waited for)."""
    seen: list[dict[str, Any]] = []

    def find() -> dict[str, Any] | None:
        while (message := pubsub.get_message(timeout=0.05)) is not None:
            if message["type"] == "message":
                seen.append(json.loads(message["data"]))
        return next((m for m in seen if m["vehicle_id"] == vehicle_id and m["type"] == type_), None)

    found = wait_until(find)
    assert found is not None
    return found


def test_a_request_id_reaches_its_tasks_lines_its_events_and_the_relay(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, redis_url: str, json_lines: JsonLines
) -> None:
    published = redis.Redis.from_url(redis_url).pubsub()
    published.subscribe(ALL_EVENTS)
    # given a vehicle created by one request
    vehicle = create_vehicle(api, {**tenant.headers(), "x-request-id": "create-1"})
    back = consent(vehicle["authorization_url"])

    # when the user comes back through the callback, with a request id of its own
    callback = api.get(callback_path(back), headers={"x-request-id": "callback-1"})
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "authorized")
    message = relayed(published, vehicle["id"], "connected_vehicle.authorized")

    # then its answer names it
    assert callback.headers["x-request-id"] == "callback-1"
    # each event names the request that set it going, in its row and in the relay's
    # message (beside the client's data, not in it)
    assert event_rows(tenant, vehicle["id"]) == {
        "connected_vehicle.created": "create-1",
        "connected_vehicle.authorized": "callback-1",
    }
    assert message["request_id"] == "callback-1"
    assert "request_id" not in message["data"]
    # and the validation task the callback enqueued logs its provider calls with its id,
    # its vehicle and its client
    step_lines = [
        line
        for line in json_lines()
        if line.get("request_id") == "callback-1" and line["logger"] == "httpx"
    ]
    assert any("/oauth/token" in line["message"] for line in step_lines), json_lines()
    assert all(line["vehicle_id"] == vehicle["id"] for line in step_lines), step_lines
    assert all(line["client_id"] == tenant.client_id for line in step_lines), step_lines


def test_a_steps_own_lines_name_its_client_through_its_retries(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, json_lines: JsonLines
) -> None:
    # given a provider whose vehicle list is down for good
    smartcar.fault("/v2.0/vehicles", 503, times=1000)
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"])

    # when the callback sets the validation going, and it retries until it gives up
    api.get(callback_path(back), headers={"x-request-id": "callback-2"})
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "failed")

    # then the step's own lines, in each attempt (each a message of its own), name the
    # vehicle from the task's argument and the client the message never carried: the
    # one the step loaded
    retries = [
        line
        for line in json_lines()
        if line.get("request_id") == "callback-2" and line["logger"] == "workers.retry"
    ]
    assert any("giving up" in line["message"] for line in retries), json_lines()
    assert any("next try" in line["message"] for line in retries), retries
    assert all(line.get("vehicle_id") == vehicle["id"] for line in retries), retries
    assert all(line.get("client_id") == tenant.client_id for line in retries), retries


def test_an_authenticated_requests_lines_name_its_client(
    api: TestClient, tenant: Tenant, json_lines: JsonLines
) -> None:
    # given a pending vehicle whose authorization URL this service cannot decrypt
    vehicle = create_vehicle(api, tenant.headers())
    written_under_another_key(tenant.db, vehicle["id"], "authorization_url")

    # when its client lists its vehicles (the URL decrypted in the web's thread)
    listed = gql(
        api,
        "{ connectedVehicleList { id authorization_url } }",
        headers={**tenant.headers(), "x-request-id": "list-1"},
    )

    # then the line the web logs about it names the request and the authenticated client
    assert listed["data"]["connectedVehicleList"] == [
        {"id": vehicle["id"], "authorization_url": None}
    ]
    unreadable = [
        line
        for line in json_lines()
        if line["logger"] == "workflows.unreadable" and vehicle["id"] in line["message"]
    ]
    assert unreadable, json_lines()
    assert all(line.get("request_id") == "list-1" for line in unreadable), unreadable
    assert all(line.get("client_id") == tenant.client_id for line in unreadable), unreadable


@pytest.mark.parametrize(
    "given", ["x" * 65, "evil\tid", "id with spaces", "<script>", "a\u00e9b", 'inj\\ect"']
)
def test_a_request_id_that_is_too_long_or_odd_is_replaced(api: TestClient, given: str) -> None:
    answer = api.get("/healthz", headers={"x-request-id": given.encode()})
    returned = answer.headers["x-request-id"]
    assert returned != given
    assert logconfig.well_formed(returned) and len(returned) == 32


def test_a_plain_request_id_is_kept_and_one_is_made_when_none_is_given(api: TestClient) -> None:
    assert api.get("/healthz", headers={"x-request-id": "Ab-1.2_3:4"}).headers["x-request-id"] == (
        "Ab-1.2_3:4"
    )
    first = api.get("/healthz").headers["x-request-id"]
    second = api.get("/healthz").headers["x-request-id"]
    assert first != second and logconfig.well_formed(first)
