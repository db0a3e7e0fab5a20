"""The car's live data at Smartcar and Tesla, read over HTTP from their fakes: each part
in the service's units, only the parts asked for and granted, one request per read, odd
answers reported rather than raised, a sleeping Tesla left asleep; and Smartcar's
webhooks (signature, VERIFY challenge, what a delivery tells, its delivery key)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from providers import AccountRef, Adapter, PermanentError, Reason, RetryableError
from providers.data import VehicleData
from providers.fakes.common import Reading
from providers.fakes.serve import FakeServer
from providers.smartcar import SmartcarAdapter
from providers.webhooks import Happening
from tests.helpers.adapters import connect
from tests.helpers.providers_table import BY_NAME

ALL = {"battery", "charge", "location", "odometer"}
SCOPES = ("location", "charge_state", "odometer")
MEASURED = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
# Round numbers in the providers' own units: 200 miles of range, 10 000 on the odometer.
READING = Reading(
    battery_percent=64.0,
    range_km=321.8688,
    capacity_kwh=82.0,
    plugged_in=True,
    charging=True,
    charge_rate_kw=7.0,
    charge_limit_percent=80.0,
    minutes_to_full=45.0,
    latitude=52.52,
    longitude=13.405,
    odometer_km=16093.44,
    measured_at=MEASURED.timestamp(),
)
SECRET = "whsec-test"


@dataclass
class Car:
    server: FakeServer
    adapter: Adapter
    account: AccountRef
    vehicle_id: str
    vin: str

    def read(self, parts: set[str] = ALL) -> VehicleData:
        return self.adapter.read_data(self.account, self.vehicle_id, parts)

    def calls(self) -> int:
        return sum(self.server.fake.requests.values())


def connected(name: str, fakes: dict[str, FakeServer], withheld: list[str] | None = None) -> Car:
    case = BY_NAME[name]
    server = fakes[name]
    server.account("owner", case.car, withheld=withheld)
    server.fake.readings[case.car["vin"]] = Reading(**vars(READING))
    c = connect(case, server, scopes=SCOPES)
    vehicle_id = c.adapter.list_vehicle_ids(c.account)[0]
    return Car(server, c.adapter, c.account, vehicle_id, case.car["vin"])


@pytest.fixture(params=["Smartcar", "Tesla"])
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- reading the car -----------------------------------------------------------------------


def test_every_part_comes_in_the_services_units(name: str, fakes: dict[str, FakeServer]) -> None:
    """Percent 0-100, km, kWh, kW, minutes, whatever the provider speaks (fractions at
    Smartcar, miles at Tesla), each part stamped with when the car measured it."""
    car = connected(name, fakes)

    data = car.read()

    assert data.battery and data.charge and data.location and data.odometer, data.problems
    assert data.battery.percentage == 64.0
    assert data.battery.range_km == pytest.approx(321.87, abs=0.01)
    assert data.battery.capacity_kwh == (82.0 if name == "Smartcar" else None)
    assert (data.charge.is_plugged_in, data.charge.is_charging) == (True, True)
    assert data.charge.charge_limit_percentage == 80.0
    if name == "Tesla":  # Smartcar's charge endpoints do not say these
        assert (data.charge.charge_rate_kw, data.charge.time_remaining_minutes) == (7.0, 45.0)
    assert (data.location.latitude, data.location.longitude) == (52.52, 13.405)
    assert data.odometer.value_km == pytest.approx(16093.44, abs=0.01)
    for part in (data.battery, data.charge, data.location, data.odometer):
        assert part.updated_at == MEASURED
    assert data.problems == ()


@pytest.mark.parametrize(
    ("plugged_in", "charging"), [(False, False), (True, False)], ids=["unplugged", "plugged"]
)
def test_plugged_in_and_charging_are_told_apart(
    name: str, fakes: dict[str, FakeServer], plugged_in: bool, charging: bool
) -> None:
    """A car plugged in but not charging is neither unplugged nor charging."""
    car = connected(name, fakes)
    reading = car.server.fake.readings[car.vin]
    reading.plugged_in, reading.charging = plugged_in, charging

    charge = car.read({"charge"}).charge

    assert charge and (charge.is_plugged_in, charge.is_charging) == (plugged_in, charging)


def test_a_part_not_asked_for_is_none(name: str, fakes: dict[str, FakeServer]) -> None:
    """The vehicle's own scope decides what is read, not what the provider allows."""
    car = connected(name, fakes)

    data = car.read({"battery"})

    assert data.battery is not None
    assert (data.charge, data.location, data.odometer) == (None, None, None)
    assert data.problems == ()  # the others were not asked for, not found missing


def test_a_withheld_scope_leaves_its_part_none(name: str, fakes: dict[str, FakeServer]) -> None:
    """The user unticked location at the provider: the rest is still read."""
    car = connected(name, fakes, withheld=[BY_NAME[name].location_scope])

    data = car.read()

    assert data.location is None
    assert data.battery and data.charge and data.odometer
    assert any("location" in line for line in data.problems)


def test_one_request_per_read(name: str, fakes: dict[str, FakeServer]) -> None:
    """Every part in one call: providers count (and bill) calls per vehicle."""
    car = connected(name, fakes)
    before, reads = car.calls(), car.server.fake.data_reads

    car.read()

    assert car.calls() == before + 1
    assert car.server.fake.data_reads == reads + 1


def test_an_odd_shape_leaves_that_part_none(name: str, fakes: dict[str, FakeServer]) -> None:
    """A provider that changes a format costs one part and a log line, not the read."""
    car = connected(name, fakes)
    if name == "Smartcar":
        car.server.fake.batch_overrides["/odometer"] = (200, {"km": "lots"})
    else:
        car.server.fake.data_overrides["vehicle_state"] = {"odometer": {"miles": 10}}

    data = car.read()

    assert data.odometer is None
    assert data.battery and data.charge and data.location
    assert len(data.problems) == 1 and "odometer" in data.problems[0]
    token = car.account.require_tokens().access_token
    assert token not in data.problems[0]


def test_revoked_consent_is_access_revoked(name: str, fakes: dict[str, FakeServer]) -> None:
    """The user took the access back: no retry can help."""
    car = connected(name, fakes)
    car.server.fake.revoke_account("owner")

    with pytest.raises(PermanentError) as raised:
        car.read()

    assert raised.value.reason is Reason.ACCESS_REVOKED


# -- Smartcar only ---------------------------------------------------------------------------


def test_smartcar_lost_access_in_one_sub_response(fakes: dict[str, FakeServer]) -> None:
    """An authentication error on one path is the access gone, not a missing part."""
    car = connected("Smartcar", fakes)
    error = {"type": "AUTHENTICATION", "code": None, "resolution": {"type": "REAUTHENTICATE"}}
    car.server.fake.batch_overrides["/charge"] = (401, error)

    with pytest.raises(PermanentError) as raised:
        car.read()

    assert raised.value.reason is Reason.ACCESS_REVOKED


def test_smartcar_a_car_that_answers_nothing_now_is_retried_later(
    fakes: dict[str, FakeServer],
) -> None:
    """Every path answered RETRY_LATER (the car asleep): a snapshot of nothing would hide
    the last good one, so the read fails retryably."""
    car = connected("Smartcar", fakes)
    car.server.fake.asleep.add(car.vin)

    with pytest.raises(RetryableError):
        car.read()


# -- Tesla only ------------------------------------------------------------------------------


def test_a_sleeping_tesla_is_retried_later_and_never_woken(fakes: dict[str, FakeServer]) -> None:
    """Waking a car drains its battery and counts against the user's patience: a
    sleeping car is read when it wakes by itself."""
    car = connected("Tesla", fakes)
    car.server.fake.asleep.add(car.vin)
    before = car.calls()

    with pytest.raises(RetryableError) as raised:
        car.read()

    assert "asleep" in str(raised.value)
    assert car.server.fake.wake_ups == 0 and car.vin in car.server.fake.asleep
    assert car.calls() == before + 1  # not asked again at once either


def test_tesla_without_vehicle_data_scope_is_scope_not_granted(
    fakes: dict[str, FakeServer],
) -> None:
    """Without `vehicle_device_data` Tesla answers no data at all (403)."""
    car = connected("Tesla", fakes, withheld=["vehicle_device_data"])

    with pytest.raises(PermanentError) as raised:
        car.read()

    assert raised.value.reason is Reason.SCOPE_NOT_GRANTED


# -- Smartcar's webhooks -----------------------------------------------------------------------


def signed(body: Any) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def test_a_signed_delivery_verifies() -> None:
    raw, signature = signed({"eventType": "VEHICLE_STATE"})
    assert SmartcarAdapter.verify_webhook(SECRET, raw, signature)


@pytest.mark.parametrize(
    "header",
    [None, "", "0" * 64, "é" * 64, "not hex at all"],
    ids=["missing", "empty", "forged", "non-ascii", "garbage"],
)
def test_an_unsigned_or_forged_delivery_does_not_verify(header: str | None) -> None:
    """Anything but the body's own HMAC is refused, and refusing never raises."""
    raw, _ = signed({"eventType": "VEHICLE_STATE"})
    assert not SmartcarAdapter.verify_webhook(SECRET, raw, header)


def test_a_signature_of_another_body_or_secret_does_not_verify() -> None:
    raw, signature = signed({"eventType": "VEHICLE_STATE"})
    assert not SmartcarAdapter.verify_webhook(SECRET, raw + b" ", signature)
    assert not SmartcarAdapter.verify_webhook("other-secret", raw, signature)


def test_the_verify_challenge_is_answered_with_its_hmac() -> None:
    """Smartcar activates a webhook only once its challenge comes back signed."""
    body = {"eventType": "VERIFY", "eventId": "e-1", "data": {"challenge": "ch-123"}}

    challenge = SmartcarAdapter.webhook_challenge(body)

    assert challenge == "ch-123"
    expected = hmac.new(SECRET.encode(), b"ch-123", hashlib.sha256).hexdigest()
    assert SmartcarAdapter.answer_challenge(SECRET, challenge) == expected
    assert SmartcarAdapter.webhook_challenge({"eventType": "VEHICLE_STATE"}) is None


def test_a_vehicle_state_delivery_is_data_in_the_services_units(
    fakes: dict[str, FakeServer],
) -> None:
    """Smartcar pushes signals: they update the snapshot without a read."""
    fake = fakes["Smartcar"].fake
    vin = BY_NAME["Smartcar"].car["vin"]
    fake.readings[vin] = Reading(**vars(READING))
    raw, signature = signed(fake.vehicle_state_event("veh-1", vin))
    assert SmartcarAdapter.verify_webhook(SECRET, raw, signature)

    [event] = SmartcarAdapter.parse_webhook(json.loads(raw))

    assert (event.happening, event.vehicle_id) == (Happening.data, "veh-1")
    data = event.data
    assert data and data.battery and data.charge and data.location and data.odometer
    assert (data.battery.percentage, data.battery.range_km) == (64.0, 321.8688)
    assert data.battery.capacity_kwh == 82.0
    assert (data.charge.is_plugged_in, data.charge.is_charging) == (True, True)
    assert data.charge.charge_limit_percentage == 80.0
    assert (data.location.latitude, data.odometer.value_km) == (52.52, 16093.44)
    assert data.odometer.updated_at == MEASURED


def test_a_vehicle_state_with_one_odd_signal_keeps_the_others() -> None:
    body = {
        "eventType": "VEHICLE_STATE",
        "data": {
            "vehicle": {"id": "veh-1"},
            "signals": [
                {"code": "tractionbattery-stateofcharge", "body": {"value": "high"}},
                {"code": "odometer-traveleddistance", "body": {"value": 10, "unit": "miles"}},
            ],
        },
    }

    [event] = SmartcarAdapter.parse_webhook(body)

    assert event.data and event.data.battery is None and event.data.odometer
    assert event.data.odometer.value_km == pytest.approx(16.093, abs=0.001)
    assert len(event.data.problems) == 1


def test_a_vehicle_error_of_lost_access_is_access_lost(fakes: dict[str, FakeServer]) -> None:
    body = fakes["Smartcar"].fake.vehicle_error_event("veh-1")

    [event] = SmartcarAdapter.parse_webhook(body)

    assert (event.happening, event.vehicle_id) == (Happening.access_lost, "veh-1")


def test_a_missing_permission_is_not_lost_access(fakes: dict[str, FakeServer]) -> None:
    """PERMISSION comes with REAUTHENTICATE, yet it costs one part of the data (as in a
    read), not the whole connection."""
    body = fakes["Smartcar"].fake.vehicle_error_event("veh-1")
    body["data"]["errors"][0]["type"] = "PERMISSION"
    body["data"]["errors"][0]["resolution"] = {"type": "REAUTHENTICATE"}

    [event] = SmartcarAdapter.parse_webhook(body)

    assert event.happening is Happening.nothing


def test_a_resolved_vehicle_error_is_nothing(fakes: dict[str, FakeServer]) -> None:
    """Smartcar tells when an error is over: that is no reason to disconnect."""
    body = fakes["Smartcar"].fake.vehicle_error_event("veh-1")
    body["data"]["errors"][0]["state"] = "RESOLVED"

    [event] = SmartcarAdapter.parse_webhook(body)

    assert event.happening is Happening.nothing


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "VEHICLE_ERROR",
        42,
        {},
        {"eventType": "VEHICLE_ERROR", "data": "x"},
        {"eventType": "VEHICLE_ERROR", "data": {"vehicle": {"id": "v"}, "errors": ["x"]}},
        {"eventType": "VEHICLE_STATE", "data": {"vehicle": {"id": "v"}, "signals": {}}},
        {"eventType": "VEHICLE_STATE", "data": {"vehicle": ["v"], "signals": []}},
        {"eventType": "SOMETHING_NEW", "data": {"vehicle": {"id": "v"}}},
    ],
)
def test_anything_else_is_nothing_and_never_raises(body: Any) -> None:
    [event] = SmartcarAdapter.parse_webhook(body)
    assert event.happening is Happening.nothing and event.data is None


@pytest.mark.parametrize(
    ("body", "own_id"),
    [
        ({"eventId": "evt-1"}, True),
        ({"eventId": "x" * 101}, False),
        ({"eventId": 7}, False),
        ({}, False),
        ([{"eventId": "evt-1"}], False),
    ],
)
def test_a_delivery_is_known_by_its_event_id(body: Any, own_id: bool) -> None:
    """A replayed delivery is stored once: Smartcar's id where it is a sane one, else the
    body's digest (a long id would bloat the key)."""
    raw = json.dumps(body).encode()

    key = SmartcarAdapter.delivery_key(raw, body)

    assert key == ("evt-1" if own_id else hashlib.sha256(raw).hexdigest())
