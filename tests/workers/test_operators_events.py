"""What operators see in Celery's event stream (Flower): a workflow that ends `failed` is a
FAILURE task carrying the vehicle's id and code, and every state change is a custom
event. Observed with a real event receiver on this run's broker, the work done by the
session's real worker."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant
from tests.helpers.api import create_vehicle, error_code, gql
from tests.helpers.store import vehicle_row
from tests.helpers.wait import wait_until
from workers.relay import STATE_EVENT

pytestmark = pytest.mark.usefixtures("worker")

AUTHORIZE = """mutation($input: AuthorizeConnectedVehicleInput!) {
  authorizeConnectedVehicle(input: $input) { id status } }"""


def test_a_failed_workflow_is_a_failure_task_and_every_state_change_an_event(
    api: TestClient, tenant: Tenant, stream: list[dict[str, Any]]
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    body = gql(
        api,
        AUTHORIZE,
        {"input": {"id": vehicle["id"], "options": {"code": "not-a-code-smartcar-issued"}}},
        tenant.headers(),
    )
    assert error_code(body) == "AUTH_CODE_INVALID"
    assert vehicle_row(tenant.db, vehicle["id"]).status == "failed"

    def failure() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in stream
                if e["type"] == "task-failed" and vehicle["id"] in e.get("exception", "")
            ),
            None,
        )

    def states() -> list[tuple[str, str | None]]:
        return [
            (e["status"], e["failure_code"])
            for e in stream
            if e["type"] == STATE_EVENT and e["vehicle_id"] == vehicle["id"]
        ]

    failed = wait_until(failure)
    assert failed is not None

    assert "WorkflowFailed" in failed["exception"]
    assert "AUTH_CODE_INVALID" in failed["exception"]
    started = [e for e in stream if e["type"] == "task-received" and e["uuid"] == failed["uuid"]]
    assert started and started[0]["name"] == "cv.validate_authorization"
    assert vehicle["id"] in started[0]["args"]
    wait_until(lambda: ("failed", "AUTH_CODE_INVALID") in states())
    assert states()[0] == ("pending", None)


def test_housekeeping_sends_no_task_events(
    api: TestClient, tenant: Tenant, stream: list[dict[str, Any]]
) -> None:
    """The relay runs after every event (a housekeeping task); a step task is seen."""
    vehicle = create_vehicle(api, tenant.headers())
    gql(
        api,
        AUTHORIZE,
        {"input": {"id": vehicle["id"], "options": {"code": "not-a-code-smartcar-issued"}}},
        tenant.headers(),
    )
    wait_until(lambda: any(e["type"] == "task-failed" for e in stream))
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "failed")
    names = {e.get("name") for e in stream if e["type"] == "task-received"}
    assert "cv.validate_authorization" in names
    assert not names & {"cv.relay_outbox", "cv.deliver_webhooks", "cv.sweep", "cv.prune"}
