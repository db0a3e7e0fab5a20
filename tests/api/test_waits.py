"""A mutation's bounded wait is woken by its vehicle's change (pub/sub on CHANGED), not by
a query every 100 ms: while it waits, the API sends the database nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from starlette.testclient import TestClient

from harness.tenant import Tenant
from settings import Settings
from store.db import Database
from store.models import utcnow
from tests.helpers.api import AUTHORIZE, api_with, gql
from tests.helpers.store import add_vehicle, statements
from tests.helpers.wait import wait_until
from workflows.events import CHANGED
from workflows.machine import Lifecycle
from workflows.vehicles import lock


def validating(tenant: Tenant) -> str:
    """A vehicle whose validation is under way (a job has it): authorize only waits."""
    return add_vehicle(
        tenant.db,
        client_id=tenant.client_id,
        user_id="user-1",
        auth_code="code-1",
        code_received_at=utcnow(),
        step="validate",
        step_due_at=utcnow(),
    )


def authorize_as_the_worker_does(db: Database, vehicle_id: str) -> None:
    with db.session() as session:
        row = lock(session, vehicle_id)
        assert row is not None
        Lifecycle(session, row).trigger_event("authorize", vin="VIN1", provider_vehicle_id="p1")
        session.commit()


class Waiting:
    """authorizeConnectedVehicle, called in a thread; when it answered."""

    def __init__(self, api: TestClient, tenant: Tenant, vehicle_id: str) -> None:
        self.body: dict[str, Any] = {}
        self.answered_at = 0.0
        headers = tenant.headers()
        gql(api, "{ connectedVehicleList(size: 1) { id } }", headers=headers)  # caller cached

        def call() -> None:
            self.body = gql(api, AUTHORIZE, {"input": {"id": vehicle_id}}, headers)
            self.answered_at = time.monotonic()

        self.thread = threading.Thread(target=call)
        self.thread.start()
        wakeups = api.app.state.graphql.wakeups  # type: ignore[attr-defined]
        wait_until(lambda: wakeups.waiting == 1 and wakeups.subscribed.is_set())

    def answer(self) -> dict[str, Any]:
        self.thread.join(15)
        assert not self.thread.is_alive()
        assert "errors" not in self.body, self.body
        result: dict[str, Any] = self.body["data"]["authorizeConnectedVehicle"]
        return result


def test_a_waiting_mutation_answers_on_its_vehicles_change_without_polling(
    tenant: Tenant, settings: Settings, redis_url: str
) -> None:
    vehicle_id = validating(tenant)
    with api_with(settings, mutation_wait_seconds=10, wait_recheck_seconds=60) as api:
        waiting = Waiting(api, tenant, vehicle_id)
        with statements(api.app.state.db) as sent:  # type: ignore[attr-defined]
            time.sleep(0.5)
            authorize_as_the_worker_does(tenant.db, vehicle_id)
            quiet = list(sent)
            changed_at = time.monotonic()
            redis.Redis.from_url(settings.events_url).publish(CHANGED, vehicle_id)
            answer = waiting.answer()

    assert quiet == []  # no polling query while it waited
    assert answer["status"] == "authorized"
    assert waiting.answered_at - changed_at < 1.0  # the goal is 100 ms; see bench


def test_the_listener_survives_a_lost_connection(
    tenant: Tenant, settings: Settings, redis_url: str
) -> None:
    vehicle_id = validating(tenant)
    events = redis.Redis.from_url(settings.events_url)
    with api_with(settings, mutation_wait_seconds=10, wait_recheck_seconds=60) as api:
        wakeups = api.app.state.graphql.wakeups  # type: ignore[attr-defined]
        waiting = Waiting(api, tenant, vehicle_id)
        (listener,) = [c for c in events.client_list() if c["name"] == wakeups.client_name]

        events.client_kill_filter(_id=listener["id"])
        wait_until(lambda: wakeups.subscriptions == 2)
        authorize_as_the_worker_does(tenant.db, vehicle_id)
        changed_at = time.monotonic()
        events.publish(CHANGED, vehicle_id)
        answer = waiting.answer()

    assert answer["status"] == "authorized"
    assert waiting.answered_at - changed_at < 1.0


def test_a_lost_wake_is_made_up_for_by_the_slow_recheck(
    tenant: Tenant, settings: Settings, redis_url: str
) -> None:
    vehicle_id = validating(tenant)
    with api_with(settings, mutation_wait_seconds=10, wait_recheck_seconds=0.3) as api:
        waiting = Waiting(api, tenant, vehicle_id)
        authorize_as_the_worker_does(tenant.db, vehicle_id)  # and nothing published
        changed_at = time.monotonic()
        answer = waiting.answer()

    assert answer["status"] == "authorized"
    assert waiting.answered_at - changed_at < 5.0  # by a recheck, long before the deadline
