"""A user's whole way through the public API at any provider (tests/helpers/
providers_table.py): create, consent at the provider's fake, come back, authorize; and
the removal."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from tests.helpers.api import AUTHORIZE, CREATE, callback_path, gql
from tests.helpers.providers_table import ProviderCase

__all__ = ["REMOVE", "authorize", "create", "journey"]

REMOVE = """mutation($input: RemoveConnectedVehicleInput!) {
  removeConnectedVehicle(input: $input) { id status vin } }"""


def create(api: TestClient, tenant: Tenant, case: ProviderCase, catalogue_id: str) -> dict:
    return gql(
        api,
        CREATE,
        {
            "input": {
                "vehicle_id": catalogue_id,
                "provider": case.name,
                "options": {"redirect_uri": CLIENT_PAGE, "scope": ["location", "odometer"]},
            }
        },
        tenant.headers(),
    )


def authorize(api: TestClient, tenant: Tenant, vehicle_id: str, code: str | None = None) -> dict:
    options = {"code": code} if code else None
    return gql(api, AUTHORIZE, {"input": {"id": vehicle_id, "options": options}}, tenant.headers())


def journey(
    api: TestClient,
    tenant: Tenant,
    case: ProviderCase,
    server: FakeServer,
    *vehicles: dict[str, Any],
    decision: str = "allow",
    withheld: list[str] | None = None,
    provider_down: bool = False,
) -> tuple[str, dict]:
    """The user's whole way: create, consent at the provider, come back, authorize."""
    server.account("user", *vehicles, withheld=withheld)
    body = create(api, tenant, case, case.catalogue_id)
    vehicle = body["data"]["createConnectedVehicle"]
    assert vehicle["status"] == "pending"
    assert vehicle["authorization_url"], "the link was not ready within the mutation's wait"
    back = consent(vehicle["authorization_url"], account="user", decision=decision)
    if provider_down:
        server.fault(case.api_path, 503, times=1000)
    returned = api.get(callback_path(back))
    assert returned.status_code == 303
    return vehicle["id"], authorize(api, tenant, vehicle["id"])
