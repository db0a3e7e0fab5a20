"""The request id travels with the work (workers.correlation): a task published while a
request is served carries its id in the message's headers, and the worker serves the
task in that id's context; so the lines a task logs, the events its step writes and the
relay's messages name the request that set it going. The first two over the session's
real worker, the rest on the signals themselves and a broker queue nobody consumes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery
from celery.signals import task_postrun, task_prerun
from sqlalchemy import select
from starlette.testclient import TestClient

import logconfig
from harness.tenant import Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from store.models import OutboxEvent
from tests.helpers.api import callback_path, create_vehicle
from tests.helpers.logs import JsonLines
from tests.helpers.store import vehicle_row
from tests.helpers.wait import wait_until
from workers.correlation import HEADER
from workflows.events import ALL_EVENTS


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


@pytest.mark.usefixtures("worker")
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


@pytest.mark.usefixtures("worker")
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


# -- the message's header -------------------------------------------------------------------


@pytest.fixture
def sent(redis_url: str) -> Iterator[Any]:
    """Publish a task from this process to a queue of this run's Redis db that no worker
    consumes; the message's headers, read back from Redis."""
    app = Celery("cv-correlation-probe", broker=redis_url)
    queue = f"cv-test-correlation-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)

    def headers_of(**options: Any) -> dict[str, Any]:
        app.send_task("cv.probe", queue=queue, **options)
        raw = client.lpop(queue)
        assert raw is not None, "nothing published"
        headers: dict[str, Any] = json.loads(raw)["headers"]
        return headers

    yield headers_of
    client.delete(queue, f"_kombu.binding.{queue}")
    client.close()
    app.close()


def test_a_task_sent_while_a_request_is_served_carries_its_id(sent: Any) -> None:
    token = logconfig.begin(request_id="req-1")
    try:
        headers = sent()
    finally:
        logconfig.end(token)

    assert headers[HEADER] == "req-1"


def test_a_task_sent_outside_any_request_carries_no_id(sent: Any) -> None:
    assert HEADER not in sent()


def test_an_id_the_sender_set_is_kept(sent: Any) -> None:
    token = logconfig.begin(request_id="req-1")
    try:
        headers = sent(headers={HEADER: "set-by-hand"})
    finally:
        logconfig.end(token)

    assert headers[HEADER] == "set-by-hand"


# -- the task's context ---------------------------------------------------------------------


class Probe:
    """A task as the worker's signals see it: a name and the request of its message."""

    name = "cv.probe"

    def __init__(self, request_id: str | None) -> None:
        self.request = SimpleNamespace(**{HEADER: request_id})


def served(request_id: str | None) -> tuple[str | None, str | None]:
    """The request id in context while a task carrying `request_id` runs (the worker's
    prerun signal), and after it ran (postrun)."""
    task = Probe(request_id)
    task_prerun.send(sender=task, task_id="t-1", task=task, args=["vehicle-1"], kwargs={})
    during = logconfig.current("request_id")
    task_postrun.send(
        sender=task, task_id="t-1", task=task, args=["vehicle-1"], kwargs={}, retval=None
    )
    return during, logconfig.current("request_id")


def test_a_task_runs_in_its_request_ids_context_and_leaves_it_after() -> None:
    assert served("req-1") == ("req-1", None)


@pytest.mark.parametrize("forged", ["x" * 65, "evil id", 'inj"ect', "a\u00e9b"])
def test_an_odd_id_in_a_message_is_not_taken(forged: str) -> None:
    """A message's header is input like a request's: an id that is not short and plain is
    never logged."""
    assert served(forged) == (None, None)
