"""The workers' metrics, counted by the session's real worker (in this process, so its
counts are this process's): step attempts and their duration, provider calls by
endpoint template and status, authorizations by provider and outcome, a client
webhook delivery's outcome, the sweep's actions."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import metrics
from harness.tenant import Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from store.db import Database
from store.models import OutboxEvent
from tests.helpers.api import callback_path, create_vehicle
from tests.helpers.metrics import value
from tests.helpers.store import vehicle_row
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import Receiver, delivery, endpoint_for
from workers.app import app as celery_app

pytestmark = pytest.mark.usefixtures("worker")


def now() -> str:
    return metrics.exposition().decode()


def test_an_authorization_is_counted(api: TestClient, tenant: Tenant, smartcar: FakeServer) -> None:
    before = now()
    # When a vehicle is authorized by the worker's validation step
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "authorized")
    step = {"step": "validate", "outcome": "success"}
    wait_until(
        lambda: (
            value(now(), "cv_step_attempts_total", **step)
            > value(before, "cv_step_attempts_total", **step)
        )
    )
    after = now()

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    # Then
    assert delta("cv_authorizations_total", provider="Smartcar", outcome="authorized") == 1
    assert delta("cv_step_attempts_total", **step) == 1
    assert delta("cv_step_duration_seconds_count", step="validate") == 1
    token = {"provider": "Smartcar", "endpoint": "/oauth/token", "status": "200"}
    assert delta("cv_provider_calls_total", **token) == 1
    vin = {"provider": "Smartcar", "endpoint": "/v2.0/vehicles/{id}/vin", "status": "200"}
    assert delta("cv_provider_calls_total", **vin) == 1
    assert (
        delta(
            "cv_provider_call_duration_seconds_count",
            provider="Smartcar",
            endpoint="/v2.0/vehicles/{id}/vin",
        )
        == 1
    )
    other = {"provider": "Smartcar", "endpoint": "other"}
    assert delta("cv_provider_call_duration_seconds_count", **other) == 0  # every path known


def test_a_provider_down_is_counted(api: TestClient, tenant: Tenant, smartcar: FakeServer) -> None:
    before = now()
    smartcar.fault("/v2.0/vehicles", 503, times=1000)
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "failed")
    failed = {"step": "validate", "outcome": "failed"}
    wait_until(
        lambda: (
            value(now(), "cv_step_attempts_total", **failed)
            > value(before, "cv_step_attempts_total", **failed)
        )
    )
    after = now()

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert delta("cv_step_attempts_total", step="validate", outcome="retry") == 2  # 3 attempts
    assert delta("cv_step_attempts_total", **failed) == 1
    down = {"provider": "Smartcar", "outcome": "PROVIDER_UNAVAILABLE"}
    assert delta("cv_authorizations_total", **down) == 1
    assert (
        delta(
            "cv_provider_calls_total", provider="Smartcar", endpoint="/v2.0/vehicles", status="503"
        )
        >= 3
    )


def test_a_delivery_and_a_sweep_are_counted(
    clean: Database, tenant: Tenant, receiver: Receiver
) -> None:
    before = now()
    # Given a delivery due, and an event the relay was never told of
    delivery_id = delivery(clean, endpoint_for(clean, tenant, receiver, []))
    with clean.session() as session:
        session.add(
            OutboxEvent(type="connected_vehicle.created", vehicle_id="v", client_id="c", payload={})
        )
        session.commit()

    # When the worker sends the delivery, and sweeps
    celery_app.send_task("cv.deliver_webhook", args=[delivery_id])
    celery_app.send_task("cv.sweep")

    # Then
    def grew(sample: str, **labels: str) -> bool:
        return value(now(), sample, **labels) > value(before, sample, **labels)

    wait_until(lambda: grew("cv_webhook_deliveries_total", outcome="succeeded"))
    wait_until(lambda: grew("cv_sweep_actions_total", action="published"))
    wait_until(lambda: grew("cv_sweeps_total"))  # every pass, for "beat alive"
