"""Providers' webhooks into `POST /webhooks/{provider}`: valid, forged, replayed and
malformed deliveries; Enode's second vehicle and deleted vehicle, Smartcar's lost access
and its VERIFY challenge."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.browser import consent
from store.db import Database
from store.models import ProviderWebhook
from tests.helpers.api import CREATE, callback_path, gql
from tests.helpers.store import row_counts, vehicle_row
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import SECRET, sign

pytestmark = pytest.mark.usefixtures("worker")


def authorized(api: TestClient, tenant: Tenant, provider: str, catalogue_id: str) -> str:
    body = gql(
        api,
        CREATE,
        {
            "input": {
                "vehicle_id": catalogue_id,
                "provider": provider,
                "options": {"redirect_uri": CLIENT_PAGE},
            }
        },
        tenant.headers(),
    )
    vehicle = body["data"]["createConnectedVehicle"]
    api.get(callback_path(consent(vehicle["authorization_url"])))
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "authorized")
    return str(vehicle["id"])


def post(api: TestClient, provider: str, body: object, **headers: str):
    raw = json.dumps(body).encode()
    return api.post(
        f"/webhooks/{provider}", content=raw, headers={**sign(provider, raw), **headers}
    )


def test_enode_a_second_vehicle_deauthorizes(api: TestClient, hooked: Tenant) -> None:
    vehicle_id = authorized(api, hooked, "Enode", "tesla-model-3")
    row = vehicle_row(hooked.db, vehicle_id)
    events = [
        {
            "event": "user:vehicle:discovered",
            "user": {"id": row.provider_user_id},
            "vehicle": {"id": "another-car"},
            "createdAt": "2026-11-29T00:00:00Z",
        },
    ]

    answer = post(api, "enode", events)

    assert answer.status_code == 200 and answer.json() == {"received": True, "duplicate": False}
    wait_until(lambda: vehicle_row(hooked.db, vehicle_id).status == "deauthorized")
    assert (
        vehicle_row(hooked.db, vehicle_id).failure_code == "CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED"
    )


def test_enode_the_vehicle_deleted_deauthorizes(api: TestClient, hooked: Tenant) -> None:
    vehicle_id = authorized(api, hooked, "Enode", "tesla-model-3")
    row = vehicle_row(hooked.db, vehicle_id)
    events = [
        {
            "event": "user:vehicle:discovered",
            "user": {"id": row.provider_user_id},
            "vehicle": {"id": row.provider_vehicle_id},
        },  # the car itself: nothing changes
        {
            "event": "user:vehicle:deleted",
            "user": {"id": row.provider_user_id},
            "vehicle": {"id": row.provider_vehicle_id},
        },
    ]
    assert post(api, "enode", events).status_code == 200
    wait_until(lambda: vehicle_row(hooked.db, vehicle_id).status == "deauthorized")
    assert vehicle_row(hooked.db, vehicle_id).failure_code == "ACCESS_REVOKED"


def test_enode_test_event(api: TestClient, hooked: Tenant) -> None:
    assert post(api, "enode", [{"event": "enode:webhook:test"}]).status_code == 200


def test_smartcar_lost_access_deauthorizes(api: TestClient, hooked: Tenant) -> None:
    vehicle_id = authorized(api, hooked, "Smartcar", "tesla-model-3")
    row = vehicle_row(hooked.db, vehicle_id)
    body = {
        "eventId": "evt-123",
        "eventType": "VEHICLE_ERROR",
        "data": {
            "vehicle": {"id": row.provider_vehicle_id},
            "errors": [{"type": "AUTHENTICATION", "resolution": {"type": "REAUTHENTICATE"}}],
        },
    }
    assert post(api, "smartcar", body).status_code == 200
    wait_until(lambda: vehicle_row(hooked.db, vehicle_id).status == "deauthorized")


def test_smartcar_verify_challenge(api: TestClient, hooked: Tenant) -> None:
    body = {"eventId": "v-1", "eventType": "VERIFY", "data": {"challenge": "abc123"}}
    answer = post(api, "smartcar", body)
    expected = hmac.new(SECRET.encode(), b"abc123", hashlib.sha256).hexdigest()
    assert answer.status_code == 200 and answer.json() == {"challenge": expected}


@pytest.mark.parametrize("provider", ["enode", "smartcar"])
def test_forged_and_unsigned_deliveries_are_refused_and_stored_nowhere(
    api: TestClient, hooked: Tenant, provider: str
) -> None:
    before = row_counts(hooked.db)
    raw = json.dumps([{"event": "enode:webhook:test"}]).encode()
    forged = api.post(f"/webhooks/{provider}", content=raw, headers=sign(provider, raw, "guess"))
    unsigned = api.post(f"/webhooks/{provider}", content=raw)
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert row_counts(hooked.db) == before


def test_a_replayed_delivery_is_stored_and_processed_once(
    api: TestClient, hooked: Tenant, clean: Database
) -> None:
    events = [{"event": "enode:webhook:test", "version": "2024-10-01"}]
    first, again = post(api, "enode", events), post(api, "enode", events)
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    with clean.session() as session:
        assert session.query(ProviderWebhook).count() == 1


def test_a_malformed_delivery_is_refused(api: TestClient, hooked: Tenant) -> None:
    raw = b"{not json"
    answer = api.post("/webhooks/enode", content=raw, headers=sign("enode", raw))
    assert answer.status_code == 400
    assert api.post("/webhooks/tesla", content=raw).status_code == 404


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"[" * 5000 + b"]" * 5000, 400),  # deeper than a JSON parser goes
        (b"\xff\xfe not UTF-8", 400),
        (json.dumps({"eventType": "VEHICLE_STATE", "eventId": "e" * 200}).encode(), 200),
    ],
    ids=["deep JSON", "invalid UTF-8", "a 200-character eventId"],
)
def test_a_signed_but_odd_delivery_is_a_clear_answer(
    api: TestClient, hooked: Tenant, raw: bytes, status: int
) -> None:
    """Signed by the provider's secret, yet odd: a 4xx or a stored delivery, never a 5xx."""
    answer = api.post("/webhooks/smartcar", content=raw, headers=sign("smartcar", raw))
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    ("provider", "raw"),
    [
        ("smartcar", b"null"),
        ("smartcar", b"[]"),
        ("smartcar", b"7"),
        ("enode", b"null"),
        ("enode", b"[]"),
        ("enode", b'{"event": "user:vehicle:updated"}'),  # Enode sends a list
        ("enode", b'["not an event"]'),
    ],
)
def test_a_signed_body_of_the_wrong_shape_is_refused_and_stored_nowhere(
    api: TestClient, hooked: Tenant, provider: str, raw: bytes
) -> None:
    before = row_counts(hooked.db)["provider_webhooks"]
    answer = api.post(f"/webhooks/{provider}", content=raw, headers=sign(provider, raw))
    assert answer.status_code == 400, answer.text
    assert row_counts(hooked.db)["provider_webhooks"] == before
