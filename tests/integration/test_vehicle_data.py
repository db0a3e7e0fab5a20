"""connectedVehicleData over the public API, every provider, a real worker, the fakes over
HTTP: what the scope covers in the service's units, one fetch however many ask, a
sleeping Tesla answered from the last snapshot, data from providers' webhooks, and the
errors of SPEC §3."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.common import Reading
from providers.fakes.serve import FakeServer
from store.db import Database
from store.models import VehicleSnapshot
from tests.helpers.api import CREATE, error_code, gql
from tests.helpers.journeys import journey
from tests.helpers.providers_table import BY_NAME, PROVIDERS, ProviderCase
from tests.helpers.store import events_of, vehicle_row
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import Receiver, endpoint_for, sign

pytestmark = pytest.mark.usefixtures("worker")

DATA = """query($id: ID!) { connectedVehicleData(id: $id) {
  id fetched_at
  battery { percentage range_km capacity_kwh updated_at }
  charge { is_plugged_in is_charging charge_rate_kw charge_limit_percentage
           time_remaining_minutes updated_at }
  location { latitude longitude updated_at }
  odometer { value_km updated_at } } }"""

READING = Reading(
    battery_percent=64.0,
    range_km=281.0,
    capacity_kwh=77.0,
    plugged_in=True,
    charging=True,
    charge_rate_kw=7.4,
    charge_limit_percent=80.0,
    minutes_to_full=50.0,
    latitude=48.1372,
    longitude=11.5756,
    odometer_km=23456.7,
)


@pytest.fixture(params=PROVIDERS, ids=str)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def connected(
    api: TestClient, tenant: Tenant, case: ProviderCase, server: FakeServer, scope: list[str]
) -> str:
    """An authorized vehicle with `scope`, its car measuring READING."""
    server.fake.readings[case.car["vin"]] = Reading(**{**vars(READING), "measured_at": 0})
    server.fake.readings[case.car["vin"]].measured_at = server.fake.now() - 120
    server.account("user", case.car)
    body = gql(
        api,
        CREATE,
        {
            "input": {
                "vehicle_id": case.catalogue_id,
                "provider": case.name,
                "options": {"redirect_uri": CLIENT_PAGE, "scope": scope},
            }
        },
        tenant.headers(),
    )
    vehicle = body["data"]["createConnectedVehicle"]
    from providers.fakes.browser import consent
    from tests.helpers.api import callback_path
    from tests.helpers.journeys import authorize

    api.get(callback_path(consent(vehicle["authorization_url"], account="user")))
    done = authorize(api, tenant, vehicle["id"])
    assert "errors" not in done, done
    return str(vehicle["id"])


def data_of(api: TestClient, tenant: Tenant, vehicle_id: str, user: str = "user-1") -> dict:
    return gql(api, DATA, {"id": vehicle_id}, tenant.headers(user))


def make_stale(db: Database, vehicle_id: str) -> None:
    with db.session() as session:
        snap = session.get(VehicleSnapshot, vehicle_id)
        assert snap is not None and snap.fetched_at is not None
        snap.fetched_at -= timedelta(days=1)
        session.commit()


def test_data_of_the_granted_scopes_in_the_services_units(
    api: TestClient, tenant: Tenant, case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    server = fakes[case.name]
    located = connected(api, tenant, case, server, ["location", "odometer"])

    got = data_of(api, tenant, located)["data"]["connectedVehicleData"]

    assert (got["battery"], got["charge"]) == (None, None)  # charge_state not granted
    assert got["location"]["latitude"] == pytest.approx(READING.latitude)
    assert got["location"]["longitude"] == pytest.approx(READING.longitude)
    assert got["odometer"]["value_km"] == pytest.approx(READING.odometer_km, abs=0.1)
    assert got["odometer"]["updated_at"] and got["fetched_at"]
    assert events_of(tenant.db, located)[-1] == "connected_vehicle.data_updated"

    charging = connected(api, tenant, case, server, ["charge_state"])
    got = data_of(api, tenant, charging)["data"]["connectedVehicleData"]

    assert (got["location"], got["odometer"]) == (None, None)
    assert got["battery"]["percentage"] == pytest.approx(READING.battery_percent)
    assert got["battery"]["range_km"] == pytest.approx(READING.range_km, abs=0.1)
    assert got["charge"]["is_plugged_in"] is True
    assert got["charge"]["charge_limit_percentage"] == pytest.approx(READING.charge_limit_percent)


def test_a_stale_snapshot_and_twenty_queries_make_one_fetch(
    api: TestClient, tenant: Tenant, case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    server = fakes[case.name]
    vehicle_id = connected(api, tenant, case, server, ["odometer"])
    first = data_of(api, tenant, vehicle_id)["data"]["connectedVehicleData"]
    make_stale(tenant.db, vehicle_id)
    server.fake.readings[case.car["vin"]].odometer_km = 30000.0
    reads = server.fake.data_reads
    server.fake.latency = 0.3  # the fetch is under way while the others ask
    headers = tenant.headers()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: gql(api, DATA, {"id": vehicle_id}, headers), range(20)))

    assert server.fake.data_reads == reads + 1
    for answer in answers:
        got = answer["data"]["connectedVehicleData"]
        assert got["odometer"]["value_km"] == pytest.approx(30000.0, abs=0.1)
        assert got["fetched_at"] > first["fetched_at"]


def test_a_fresh_snapshot_is_answered_without_a_fetch(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    case = BY_NAME["Smartcar"]
    server = fakes[case.name]
    vehicle_id = connected(api, tenant, case, server, ["odometer"])
    data_of(api, tenant, vehicle_id)
    reads = server.fake.data_reads

    again = data_of(api, tenant, vehicle_id)

    assert "errors" not in again and server.fake.data_reads == reads


def test_a_sleeping_tesla_is_answered_from_the_last_snapshot(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    case = BY_NAME["Tesla"]
    server = fakes[case.name]
    vehicle_id = connected(api, tenant, case, server, ["odometer"])
    before = data_of(api, tenant, vehicle_id)["data"]["connectedVehicleData"]
    make_stale(tenant.db, vehicle_id)
    server.fake.asleep.add(case.car["vin"])
    reads = server.fake.data_reads

    answer = data_of(api, tenant, vehicle_id)

    assert "errors" not in answer, answer
    got = answer["data"]["connectedVehicleData"]
    assert got["odometer"] == before["odometer"]  # the last snapshot
    assert server.fake.data_reads == reads + 1  # asked once, answered 408
    assert not any("wake_up" in path for path in server.fake.requests)  # never woken
    with tenant.db.session() as session:
        snap = session.get(VehicleSnapshot, vehicle_id)
        assert snap is not None and snap.fetch_error and "asleep" in snap.fetch_error

    again = data_of(api, tenant, vehicle_id)  # a moment later: not asked again

    assert again["data"]["connectedVehicleData"]["odometer"] == before["odometer"]
    assert server.fake.data_reads == reads + 1


def test_no_snapshot_and_the_provider_down_is_provider_unavailable(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    case = BY_NAME["Smartcar"]
    server = fakes[case.name]
    vehicle_id = connected(api, tenant, case, server, ["odometer"])
    server.fault("/v2.0/vehicles", 503, times=1000)

    assert error_code(data_of(api, tenant, vehicle_id)) == "PROVIDER_UNAVAILABLE"


@pytest.mark.parametrize("name", ["Enode", "Smartcar"])
def test_data_from_a_providers_webhook_needs_no_fetch(
    api: TestClient, hooked: Tenant, fakes: dict[str, FakeServer], name: str
) -> None:
    """Enode's vehicle update and Smartcar's vehicle state carry the data themselves:
    the snapshot is updated without a fetch, and parts the delivery lacks are kept."""
    case, server = BY_NAME[name], fakes[name]
    vehicle_id = connected(api, hooked, case, server, ["odometer", "location"])
    data_of(api, hooked, vehicle_id)
    server.fake.readings[case.car["vin"]].odometer_km = 40000.0
    reads = server.fake.data_reads
    row = vehicle_row(hooked.db, vehicle_id)
    if name == "Enode":
        body: object = server.fake.vehicle_updated_event(row.provider_user_id, case.car["vin"])
    else:
        body = server.fake.vehicle_state_event(row.provider_vehicle_id, case.car["vin"])
    raw = json.dumps(body).encode()

    answer = api.post(f"/webhooks/{name.lower()}", content=raw, headers=sign(name.lower(), raw))

    assert answer.status_code == 200, answer.text

    def odometer() -> float:
        got = data_of(api, hooked, vehicle_id)["data"]["connectedVehicleData"]
        return float(got["odometer"]["value_km"])

    wait_until(lambda: odometer() == pytest.approx(40000.0, abs=0.1))
    assert server.fake.data_reads == reads
    got = data_of(api, hooked, vehicle_id)["data"]["connectedVehicleData"]
    assert got["location"]["latitude"] == pytest.approx(READING.latitude)  # kept


def test_data_of_a_pending_vehicle_is_forbidden(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    body = gql(
        api,
        CREATE,
        {"input": {"vehicle_id": "tesla-model-3", "provider": "Smartcar"}},
        tenant.headers(),
    )
    vehicle_id = body["data"]["createConnectedVehicle"]["id"]

    assert error_code(data_of(api, tenant, vehicle_id)) == "CONNECTED_VEHICLE_FORBIDDEN"


def test_data_of_another_users_vehicle_is_not_found(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    case = BY_NAME["Smartcar"]
    vehicle_id, _ = journey(api, tenant, case, fakes[case.name], case.car)

    body = data_of(api, tenant, vehicle_id, user="someone-else")

    assert error_code(body) == "CONNECTED_VEHICLE_NOT_FOUND"


def test_an_unexpected_shape_is_a_null_part_and_a_log_line(
    api: TestClient,
    tenant: Tenant,
    fakes: dict[str, FakeServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The provider answers the odometer as something that is no number: that part is
    null, the others are there, and the log says which vehicle; never a 5xx."""
    case = BY_NAME["Smartcar"]
    server = fakes[case.name]
    vehicle_id = connected(api, tenant, case, server, ["odometer", "location"])
    server.fake.batch_overrides["/odometer"] = (200, {"distance": "far"})

    with caplog.at_level(logging.WARNING, logger="workflows.data"):
        answer = data_of(api, tenant, vehicle_id)

    assert "errors" not in answer, answer
    got = answer["data"]["connectedVehicleData"]
    assert got["odometer"] is None and got["location"] is not None
    logged = [r.getMessage() for r in caplog.records]
    assert any(vehicle_id in line and "odometer" in line for line in logged)


def test_a_new_snapshot_is_an_event_to_webhooks(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer], receiver: Receiver
) -> None:
    """Each new snapshot is `connected_vehicle.data_updated`, its data in the payload."""
    endpoint_for(tenant.db, tenant, receiver, ["connected_vehicle.data_updated"])
    case = BY_NAME["Smartcar"]
    vehicle_id = connected(api, tenant, case, fakes[case.name], ["odometer"])

    data_of(api, tenant, vehicle_id)

    wait_until(lambda: receiver.received)
    (hook,) = receiver.received
    payload = hook["payload"]
    assert (payload["type"], payload["data"]["id"]) == (
        "connected_vehicle.data_updated",
        vehicle_id,
    )
    odometer = payload["data"]["data"]["odometer"]["value_km"]
    assert odometer == pytest.approx(READING.odometer_km, abs=0.1)
    assert payload["data"]["data"]["location"] is None  # not in the scope
