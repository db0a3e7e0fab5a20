"""The end-to-end table over the public API: every provider by every outcome, with a real
worker and each provider's fake over loopback. Rows come from tests/providers_table.py.

The error rows of SPEC §3 that no provider shapes (tokens, not found, not pending,
forbidden, not allowed, bad input) are in tests/api/."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant
from tests.helpers.api import error_code, gql
from tests.helpers.journeys import REMOVE, authorize, create, journey
from tests.helpers.providers_table import PROVIDERS, ProviderCase
from tests.helpers.store import events_of, vehicle_row

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(params=PROVIDERS, ids=str)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def test_authorized(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    vehicle_id, body = journey(api, tenant, case, fakes[case.name], case.car)

    assert "errors" not in body, body
    got = body["data"]["authorizeConnectedVehicle"]
    assert (got["status"], got["vin"]) == ("authorized", case.car["vin"])
    events = events_of(tenant.db, vehicle_id)
    assert events[0] == "connected_vehicle.created"
    assert events[-1] == "connected_vehicle.authorized"
    assert events.count("connected_vehicle.authorized") == 1


def test_denied(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    vehicle_id, body = journey(api, tenant, case, fakes[case.name], case.car, decision="deny")
    assert error_code(body) == "AUTHORIZATION_DENIED"
    assert vehicle_row(tenant.db, vehicle_id).status == "failed"


def test_rejected_code(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    vehicle = create(api, tenant, case, case.catalogue_id)["data"]["createConnectedVehicle"]

    body = authorize(api, tenant, vehicle["id"], code="a-code-the-provider-never-issued")

    if case.flow == "code":
        assert error_code(body) == "AUTH_CODE_INVALID"
        assert vehicle_row(tenant.db, vehicle["id"]).failure_code == "AUTH_CODE_INVALID"
    else:  # a link flow takes no code: until the user is back there is nothing to validate
        assert error_code(body) == "CONNECTED_VEHICLE_FORBIDDEN"
        assert vehicle_row(tenant.db, vehicle["id"]).status == "pending"


def test_two_vehicles(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    second = {**case.car, "vin": "SECONDVIN00000001"}
    _, body = journey(api, tenant, case, fakes[case.name], case.car, second)
    assert error_code(body) == "CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED"


def test_wrong_make(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    if case.other_make is None:  # one make only: the catalogue refuses other cars at once
        body = create(api, tenant, case, "kia-ev6")
        assert error_code(body) == "CONNECT_PROVIDER_NOT_SUPPORTED"
        assert case.name in body["errors"][0]["message"]
        return
    _, body = journey(api, tenant, case, fakes[case.name], case.other_make)
    assert error_code(body) == "CONNECT_PROVIDER_NOT_SUPPORTED"


def test_missing_scope(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    _, body = journey(api, tenant, case, fakes[case.name], case.car, withheld=[case.location_scope])
    assert error_code(body) == "SCOPE_NOT_GRANTED"


def test_provider_down_after_every_retry(
    api: TestClient, tenant: Tenant, case: ProviderCase, fakes
) -> None:
    vehicle_id, body = journey(api, tenant, case, fakes[case.name], case.car, provider_down=True)
    assert error_code(body) == "PROVIDER_UNAVAILABLE"
    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.failure_retryable) == ("failed", True)


def test_removed(api: TestClient, tenant: Tenant, case: ProviderCase, fakes) -> None:
    """An authorized vehicle is removed: the access is given back where the provider has
    a way (Smartcar, Enode), every token forgotten."""
    server = fakes[case.name]
    vehicle_id, _ = journey(api, tenant, case, server, case.car)
    assert vehicle_row(tenant.db, vehicle_id).access_token or case.flow == "link"

    body = gql(api, REMOVE, {"input": {"id": vehicle_id}}, tenant.headers())

    assert body["data"]["removeConnectedVehicle"]["status"] == "removed"
    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.access_token, row.refresh_token, row.step) == (None, None, None)
    events = events_of(tenant.db, vehicle_id)
    assert events[-2:] == ["connected_vehicle.pending_removal", "connected_vehicle.removed"]
    gives_back = case.name in ("Smartcar", "Enode")
    assert server.fake.revocations == (1 if gives_back else 0)
    again = gql(api, REMOVE, {"input": {"id": vehicle_id}}, tenant.headers())
    assert again["data"]["removeConnectedVehicle"]["status"] == "removed"  # harmless
