"""Enode's link is made by a job: the mutation's bounded wait returns the link when the
job is quick, and the vehicle without it when it is not; the link arrives later."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.serve import FakeServer
from settings import Settings
from tests.helpers.api import CREATE, gql
from tests.helpers.store import vehicle_row
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.usefixtures("worker")


def test_a_slow_link_comes_after_the_mutation_answered(
    tenant: Tenant, fakes: dict[str, FakeServer], settings: Settings
) -> None:
    from api.app import create_app

    impatient = create_app(settings.model_copy(update={"mutation_wait_seconds": 0.3}))
    fakes["Enode"].fake.latency = 0.5  # every Enode call is slow: the link comes late
    with TestClient(impatient) as api:
        body = gql(
            api,
            CREATE,
            {
                "input": {
                    "vehicle_id": "tesla-model-3",
                    "provider": "Enode",
                    "options": {"redirect_uri": CLIENT_PAGE},
                }
            },
            tenant.headers(),
        )
    impatient.state.db.engine.dispose()

    vehicle = body["data"]["createConnectedVehicle"]
    assert (vehicle["status"], vehicle["authorization_url"]) == ("pending", None)
    url = wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).authorization_url)
    assert url is not None and "/link/" in url
