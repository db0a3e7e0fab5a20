"""The API verifies a caller without reading its client once the client's secret is
cached: a query costs its own statement and nothing else."""

from __future__ import annotations

from starlette.testclient import TestClient

from harness.tenant import Tenant
from tests.helpers.api import GET, error_code, gql
from tests.helpers.store import add_vehicle, statements
from workflows.clients import rotate_signing_secret


def test_a_known_caller_costs_no_read_of_its_client(api: TestClient, tenant: Tenant) -> None:
    vehicle_id = add_vehicle(tenant.db, client_id=tenant.client_id, user_id="user-1")
    headers = tenant.headers()
    db = api.app.state.db  # type: ignore[attr-defined]

    with statements(db) as first:
        gql(api, GET, {"id": vehicle_id}, headers)
    with statements(db) as again:
        body = gql(api, GET, {"id": vehicle_id}, tenant.headers())  # another token

    assert any("FROM clients" in s for s in first)
    assert body["data"]["connectedVehicle"]["id"] == vehicle_id
    assert len(again) == 1 and "FROM connected_vehicles" in again[0]


def test_a_rotated_secret_refuses_the_old_tokens_at_once(api: TestClient, tenant: Tenant) -> None:
    old = tenant.headers()
    gql(api, GET, {"id": "x"}, old)  # cached

    with tenant.db.session() as session:
        rotate_signing_secret(session, tenant.client_id)

    assert error_code(gql(api, GET, {"id": "x"}, old)) == "AUTH_TOKEN_INVALID"
    assert error_code(gql(api, GET, {"id": "x"}, tenant.headers())) == "CONNECTED_VEHICLE_NOT_FOUND"
