"""Operators re-drive a failed vehicle from the ops endpoint and from the tool, and the
re-driven step runs on the worker to the end."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient

from harness import cli
from harness.tenant import Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from settings import Settings
from store.models import OperatorAction
from tests.helpers.api import callback_path, create_vehicle
from tests.helpers.store import add_vehicle, vehicle_row
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.usefixtures("worker")

OPS_TOKEN = "ops-secret-token"


@pytest.fixture
def ops_api(settings: Settings):
    from api.app import create_app

    app = create_app(settings.model_copy(update={"ops_token": SecretStr(OPS_TOKEN)}))
    with TestClient(app) as client:
        yield client
    app.state.db.engine.dispose()


def unavailable(api: TestClient, tenant: Tenant, smartcar: FakeServer) -> str:
    """A vehicle that failed PROVIDER_UNAVAILABLE after its tokens were bought."""
    smartcar.fault("/v2.0/vehicles", 503, times=1000)
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "failed")
    row = vehicle_row(tenant.db, vehicle["id"])
    assert (row.failure_code, row.failure_retryable, row.attempts) == (
        "PROVIDER_UNAVAILABLE",
        True,
        3,
    )
    assert row.last_error and "503" in row.last_error
    smartcar.fake.faults.clear()  # the provider is back
    return str(vehicle["id"])


def test_the_ops_endpoint_redrives(
    ops_api: TestClient, api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle_id = unavailable(api, tenant, smartcar)
    path = f"/ops/vehicles/{vehicle_id}/redrive"

    assert ops_api.post(path).status_code == 401
    assert ops_api.post(path, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert api.post(path, headers={"authorization": f"Bearer {OPS_TOKEN}"}).status_code == 404
    answer = ops_api.post(path, headers={"authorization": f"Bearer {OPS_TOKEN}"})

    assert answer.status_code == 202
    assert answer.json()["step"] == "validate"
    wait_until(lambda: vehicle_row(tenant.db, vehicle_id).status == "authorized")
    again = ops_api.post(
        path, headers={"authorization": f"Bearer {OPS_TOKEN}", "x-cv-operator": "ana@ops"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "ILLEGAL_TRANSITION"
    assert again.json()["error"]["message"].startswith("no longer failed: authorized since ")
    # both audited, the refusal with its words
    with tenant.db.session() as session:
        audit = session.scalars(select(OperatorAction).order_by(OperatorAction.id)).all()
    assert [(a.actor, a.via, a.action, a.vehicle_id) for a in audit] == [
        ("ops token", "ops", "redrive", vehicle_id),
        ("ana@ops", "ops", "redrive", vehicle_id),
    ]
    assert audit[0].outcome is None
    assert str(audit[1].outcome).startswith("refused: no longer failed: authorized since")


def test_the_ops_endpoint_redrives_in_bulk(
    ops_api: TestClient, tenant: Tenant, settings: Settings
) -> None:
    ids = [
        add_vehicle(
            tenant.db,
            client_id=tenant.client_id,
            status="failed",
            failure_code="PROVIDER_UNAVAILABLE",
            failure_retryable=True,
        )
        for _ in range(3)
    ]
    ops = {"authorization": f"Bearer {OPS_TOKEN}", "x-cv-operator": "ana"}
    dry = ops_api.post(
        "/ops/redrives", json={"code": "PROVIDER_UNAVAILABLE", "dry_run": True}, headers=ops
    )
    assert dry.status_code == 200
    assert dry.json() == {
        "count": 3,
        "by": [{"failure_code": "PROVIDER_UNAVAILABLE", "provider": "Smartcar", "count": 3}],
    }
    for body, said in [
        ({"code": "PROVIDER_UNAVAILABLE"}, "needs a reason"),
        ({"code": "NOPE", "reason": "x"}, "unknown failure code 'NOPE'"),
        ({"reason": "x"}, "needs a filter"),
        ({"code": "PROVIDER_UNAVAILABLE", "reason": "x", "force": True}, "confirm it"),
        ({"code": ["PROVIDER_UNAVAILABLE"], "reason": "x"}, "are strings"),
        ({"since": "tomorrow-ish", "reason": "x"}, "not a time"),
    ]:
        refused = ops_api.post("/ops/redrives", json=body, headers=ops)
        assert refused.status_code == 400, body
        assert said in refused.json()["error"]["message"], body
    assert ops_api.post("/ops/redrives", content=b"{nope", headers=ops).status_code == 400
    assert ops_api.post("/ops/redrives", json={"dry_run": True}).status_code == 401

    started = ops_api.post(
        "/ops/redrives", json={"code": "PROVIDER_UNAVAILABLE", "reason": "outage"}, headers=ops
    )
    assert started.status_code == 202
    run = started.json()
    assert (run["state"], run["total"]) == ("running", 3)
    path = f"/ops/redrives/{run['id']}"
    assert ops_api.post(f"{path}/stop", headers=ops).json()["state"] == "stopped"
    assert ops_api.post(f"{path}/pause", headers=ops).status_code == 404
    assert ops_api.post(f"{path}/resume", headers=ops).json()["state"] == "running"
    # the worker runs its job (cv.bulk_redrive): every vehicle re-driven, each reported
    wait_until(lambda: ops_api.get(path, headers=ops).json()["state"] == "done")
    shown = ops_api.get(path, headers=ops).json()
    assert (shown["redriven"], shown["skipped"], shown["refused"], shown["left"]) == (3, 0, 0, 0)
    assert {i["vehicle_id"] for i in shown["items"]} == set(ids)
    assert shown["actor"] == "ana" and shown["reason"] == "outage"
    assert ops_api.get("/ops/redrives/nope", headers=ops).status_code == 400


def test_the_tool_redrives(api: TestClient, tenant: Tenant, smartcar: FakeServer) -> None:
    vehicle_id = unavailable(api, tenant, smartcar)
    listed = cli("vehicles", "list", "--status", "failed", env=dict(os.environ))
    assert vehicle_id in listed and "PROVIDER_UNAVAILABLE (r)" in listed

    out = cli("vehicles", "redrive", vehicle_id, env=dict(os.environ))

    assert "enqueued: validate" in out
    wait_until(lambda: vehicle_row(tenant.db, vehicle_id).status == "authorized")


def test_an_exhausted_delivery_is_replayed_from_the_endpoint_and_the_tool(
    ops_api: TestClient, tenant: Tenant
) -> None:
    from store.models import WebhookDelivery
    from workflows import webhook_endpoints

    with tenant.db.session() as session:
        endpoint = webhook_endpoints.create_endpoint(
            session, tenant.client_id, "http://127.0.0.1:9/x", allow_private=True
        )
        row = WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id="evt-9",
            event_type="connected_vehicle.failed",
            body="{}",
            status="exhausted",
            attempts=8,
        )
        session.add(row)
        session.commit()
        delivery_id = row.id
    listed = cli("webhooks", "deliveries", "--status", "exhausted", env=dict(os.environ))
    assert delivery_id in listed

    answer = ops_api.post(
        f"/ops/webhook-deliveries/{delivery_id}/replay",
        headers={"authorization": f"Bearer {OPS_TOKEN}"},
    )
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    with tenant.db.session() as session:
        session.get(WebhookDelivery, delivery_id).status = "exhausted"  # type: ignore[union-attr]
        session.commit()
    assert "will be sent again" in cli("webhooks", "replay", delivery_id, env=dict(os.environ))
    with tenant.db.session() as session:
        again = session.get(WebhookDelivery, delivery_id)
        assert again is not None and again.status == "pending"
        assert again.attempts <= 1  # a fresh schedule (a send to port 9 may have failed)


def test_the_tool_shows_a_vehicle_without_its_tokens(clean) -> None:
    """`cv vehicles show`: what an operator needs to see why a vehicle is where it is,
    when its token expires and its data was fetched; never a token or a code."""
    from datetime import UTC, datetime, timedelta

    from store.models import VehicleSnapshot
    from tests.helpers.store import add_vehicle

    expires = datetime.now(UTC) + timedelta(hours=2)
    vehicle_id = add_vehicle(
        clean,
        status="authorized",
        access_token="at-never-shown",
        refresh_token="rt-never-shown",
        token_expires_at=expires,
        refresh_due_at=expires - timedelta(minutes=10),
        step="refresh",
        attempts=2,
        last_error="Smartcar: token refresh answered 503",
        vin="5YJ3E1EA7NF000001",
    )
    with clean.session() as session:
        session.add(VehicleSnapshot(vehicle_id=vehicle_id, fetched_at=datetime.now(UTC)))
        session.commit()

    out = cli("vehicles", "show", vehicle_id, env=dict(os.environ))

    assert "authorized" in out and "5YJ3E1EA7NF000001" in out
    assert "refresh at" in out
    assert "attempts:       2" in out
    assert "token refresh answered 503" in out
    assert expires.isoformat(timespec="seconds") in out
    assert "data fetched:" in out and "ago" in out
    assert "never-shown" not in out


def test_the_tool_says_when_there_is_no_such_vehicle(clean) -> None:
    import subprocess

    from harness.procs import BIN, ROOT

    result = subprocess.run(
        [str(BIN / "cv"), "vehicles", "show", "no-such-id"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no connected vehicle 'no-such-id'" in result.stderr
