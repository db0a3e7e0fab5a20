"""The car's data, Enode's webhooks and High Mobility's refresh, over real HTTP against
the fakes: each part in the service's units, a part not asked for or not granted is None,
an answer in an odd shape is a problem line (never an exception), lost access is
PermanentError(ACCESS_REVOKED)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from harness.tenant import APP_ID, APP_SECRET
from providers import AccountRef, Credentials, PermanentError, Reason, Tokens
from providers.enode import EnodeAdapter
from providers.fakes.browser import consent
from providers.fakes.common import Reading
from providers.fakes.serve import FakeServer
from providers.highmobility import HighMobilityAdapter
from providers.webhooks import Happening, hmac_hex
from tests.helpers.adapters import CALLBACK, VERIFIER, MemoryTokens, back_query
from tests.helpers.providers_table import BY_NAME

ALL = {"battery", "charge", "location", "odometer"}
EVERY_SCOPE = ["location", "charge_state", "odometer"]
SECRET = "whsec-enode"


def reading(fake: Any, vin: str, **values: Any) -> Reading:
    """Given: the car measures known values, two minutes ago."""
    fake.readings[vin] = Reading(measured_at=fake.now() - 120, **values)
    return fake.readings[vin]  # type: ignore[no-any-return]


def at(r: Reading) -> datetime:
    return datetime.fromtimestamp(r.measured_at, UTC)


def requests_made(server: FakeServer) -> int:
    return sum(server.fake.requests.values())


# -- Enode ---------------------------------------------------------------------------------


ENODE_CAR = BY_NAME["Enode"].car


@pytest.fixture
def enode_server(fakes: dict[str, FakeServer]) -> FakeServer:
    server = fakes["Enode"]
    server.account("owner", ENODE_CAR)
    return server


def enode_link(
    server: FakeServer, account: str = "owner", scopes: list[str] = EVERY_SCOPE
) -> tuple[EnodeAdapter, AccountRef, str]:
    """The user links `account` through start_consent; the adapter, the account, the car."""
    enode = EnodeAdapter(Credentials(APP_ID, APP_SECRET, server.url), token_cache=MemoryTokens())
    url = enode.start_consent(state="s-1", callback_url=CALLBACK, scopes=scopes, user_id="u-1")
    consent(url, account=account)
    ref = AccountRef(user_id="u-1")
    return enode, ref, enode.list_vehicle_ids(ref)[0]


def test_enode_link_is_made_at_the_provider_and_brings_the_state_back(
    enode_server: FakeServer,
) -> None:
    """The workflow makes Enode's link in a job and knows the user by our state alone."""
    assert EnodeAdapter.link_made_at_provider and not EnodeAdapter.returns_code
    assert not EnodeAdapter.refreshes and EnodeAdapter.webhook_header == "x-enode-signature"
    enode = EnodeAdapter(Credentials(APP_ID, APP_SECRET, enode_server.url))
    state = "st/1 &=?"  # survives the round trip however it is spelled
    url = enode.start_consent(state=state, callback_url=CALLBACK, scopes=[], user_id="u-9")
    back = back_query(consent(url, account="owner"))
    assert back == {"state": state}
    assert "u-9" in enode_server.fake.users


def test_enode_reads_every_part_in_the_services_units(enode_server: FakeServer) -> None:
    """Given a known reading, each part comes back with its values and measurement time."""
    r = reading(
        enode_server.fake,
        ENODE_CAR["vin"],
        battery_percent=64.5,
        range_km=281.0,
        capacity_kwh=77.0,
        plugged_in=True,
        charging=True,
        charge_rate_kw=7.4,
        charge_limit_percent=85.0,
        minutes_to_full=42.0,
        latitude=52.52,
        longitude=13.405,
        odometer_km=23456.7,
    )
    enode, ref, vehicle_id = enode_link(enode_server)
    data = enode.read_data(ref, vehicle_id, ALL)
    assert data.battery is not None and data.charge is not None
    assert (data.battery.percentage, data.battery.range_km, data.battery.capacity_kwh) == (
        64.5,
        281.0,
        77.0,
    )
    assert (data.charge.is_plugged_in, data.charge.is_charging) == (True, True)
    assert data.charge.charge_rate_kw == 7.4 and data.charge.charge_limit_percentage == 85.0
    assert data.charge.time_remaining_minutes == 42.0
    assert data.location is not None and (data.location.latitude, data.location.longitude) == (
        52.52,
        13.405,
    )
    assert data.odometer is not None and data.odometer.value_km == 23456.7
    assert data.battery.updated_at == data.odometer.updated_at == at(r)
    assert data.problems == ()


def test_enode_a_part_not_asked_for_is_none_and_one_request_per_read(
    enode_server: FakeServer,
) -> None:
    """A read costs one call to Enode (the app token cached), and carries only what was
    asked: the API's part stays null where the vehicle's scope lacks it."""
    enode, ref, vehicle_id = enode_link(enode_server)
    before, reads = requests_made(enode_server), enode_server.fake.data_reads
    data = enode.read_data(ref, vehicle_id, {"odometer"})
    assert requests_made(enode_server) == before + 1
    assert enode_server.fake.data_reads == reads + 1
    assert data.odometer is not None
    assert data.battery is None and data.charge is None and data.location is None


def test_enode_a_withheld_location_is_none(enode_server: FakeServer) -> None:
    """Without vehicle:read:location Enode answers null coordinates: no location, and no
    problem either (nothing odd happened)."""
    enode_server.account("shy", ENODE_CAR, withheld=["vehicle:read:location"])
    enode, ref, vehicle_id = enode_link(enode_server, account="shy")
    data = enode.read_data(ref, vehicle_id, ALL)
    assert data.location is None and data.problems == ()
    assert data.battery is not None and data.odometer is not None


def test_enode_a_car_gone_from_the_account_is_revoked_access(enode_server: FakeServer) -> None:
    """SPEC §6: at Enode, the user's car gone from its account deauthorizes."""
    enode, ref, vehicle_id = enode_link(enode_server)
    enode_server.fake.revoke_account("owner")
    with pytest.raises(PermanentError) as raised:
        enode.read_data(ref, vehicle_id, ALL)
    assert raised.value.reason is Reason.ACCESS_REVOKED
    assert enode.list_vehicle_ids(ref) == []


def test_enode_an_odd_answer_is_a_problem_not_an_error(enode_server: FakeServer) -> None:
    """Enode answering something unreadable gives empty parts with a reason, no crash."""

    def odd(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json=["not", "a", "vehicle"])

    enode = EnodeAdapter(
        Credentials(APP_ID, APP_SECRET, "http://enode.test"), transport=httpx.MockTransport(odd)
    )
    data = enode.read_data(AccountRef(user_id="u-1"), "v-1", ALL)
    assert data == type(data)()  # every part None
    assert data.problems == ("vehicle: expected an object, got list",)


# -- Enode webhooks --------------------------------------------------------------------------


def signed(body: Any, secret: str = SECRET) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, "sha1=" + hmac_hex(secret, raw, "sha1")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("good", True),
        ("forged", False),  # another secret
        ("tampered", False),  # the body changed after signing
        ("sha1=ünïcødé", False),  # non-ASCII: a mismatch, not a TypeError
        ("sha256=abc", False),  # another scheme
        ("garbage", False),
        ("", False),
        (None, False),
    ],
)
def test_enode_webhook_signature(header: str | None, ok: bool) -> None:
    """Only a body signed with the client's secret is taken; nothing else raises."""
    raw, good = signed([{"event": "enode:webhook:test"}])
    claim = {"good": good, "forged": signed([{"event": "enode:webhook:test"}], "other")[1]}
    claim["tampered"] = good
    body = raw + b" " if header == "tampered" else raw
    assert EnodeAdapter.verify_webhook(SECRET, body, claim.get(header or "", header)) is ok


def test_enode_webhook_events_in_the_domains_words(enode_server: FakeServer) -> None:
    """discovered, deleted and updated become what the workflow acts on; updated carries
    the data read the same way as read_data; test and unknown events are nothing."""
    r = reading(enode_server.fake, ENODE_CAR["vin"], battery_percent=33.0, odometer_km=999.0)
    _, _, vehicle_id = enode_link(enode_server)
    fake = enode_server.fake
    body = [
        *fake.vehicle_discovered_event("u-1", "SECONDVIN"),
        *fake.vehicle_deleted_event("u-1", ENODE_CAR["vin"]),
        *fake.vehicle_updated_event("u-1", ENODE_CAR["vin"]),
        {"event": "enode:webhook:test", "createdAt": "2024-01-01T00:00:00Z"},
        {"event": "user:charger:updated", "user": {"id": "u-1"}},
    ]
    raw, header = signed(body)
    assert EnodeAdapter.verify_webhook(SECRET, raw, header)
    events = EnodeAdapter.parse_webhook(json.loads(raw))
    assert [(e.happening, e.user_id, e.vehicle_id) for e in events[:3]] == [
        (Happening.vehicle_added, "u-1", "u-1:SECONDVIN"),
        (Happening.access_lost, "u-1", vehicle_id),
        (Happening.data, "u-1", vehicle_id),
    ]
    data = events[2].data
    assert data is not None and data.battery is not None and data.odometer is not None
    assert (data.battery.percentage, data.odometer.value_km) == (33.0, 999.0)
    assert data.battery.updated_at == at(r)
    assert [e.happening for e in events[3:]] == [Happening.nothing, Happening.nothing]
    assert EnodeAdapter.delivery_key(raw, body) == EnodeAdapter.delivery_key(raw, body)


def test_enode_an_updated_event_without_some_parts_leaves_them_none() -> None:
    """An event that tells only of the charge keeps the snapshot's other parts (None here,
    merged over the old snapshot by the workflow)."""
    event = {
        "event": "user:vehicle:updated",
        "user": {"id": "u-1"},
        "vehicle": {"id": "v-1", "chargeState": {"batteryLevel": 80, "isCharging": False}},
    }
    (parsed,) = EnodeAdapter.parse_webhook([event])
    assert parsed.data is not None and parsed.data.battery is not None
    assert parsed.data.battery.percentage == 80 and parsed.data.battery.range_km is None
    assert parsed.data.charge is not None and parsed.data.charge.is_charging is False
    assert parsed.data.location is None and parsed.data.odometer is None


def test_enode_odd_event_shapes_are_problems_or_nothing() -> None:
    """A crafted body never raises: odd parts are None with a problem line each, odd
    events are nothing with a detail."""
    vehicle = {
        "id": "v-1",
        "chargeState": "full",
        "location": {"latitude": 59.9, "longitude": None},
        "odometer": {"distance": 12, "lastUpdated": "yesterday"},
    }
    (parsed,) = EnodeAdapter.parse_webhook(
        [{"event": "user:vehicle:updated", "user": {"id": "u-1"}, "vehicle": vehicle}]
    )
    assert parsed.happening is Happening.data and parsed.data is not None
    assert parsed.data == type(parsed.data)()
    assert [p.split(":")[0] for p in parsed.data.problems] == [
        "battery",
        "charge",
        "location",
        "odometer",
    ]
    assert parsed.data.problems[3] == "odometer: lastUpdated: not a timestamp"  # no values

    for body in ({"event": "user:vehicle:deleted"}, "text", None, 7):
        (event,) = EnodeAdapter.parse_webhook(body)
        assert event.happening is Happening.nothing and event.detail
    odd_items = EnodeAdapter.parse_webhook(
        [3, {"event": "user:vehicle:deleted", "vehicle": {"id": "v-1"}}, {"user": []}]
    )
    assert [e.happening for e in odd_items] == [Happening.nothing] * 3


# -- High Mobility ---------------------------------------------------------------------------


HM_CAR = BY_NAME["HighMobility"].car


@pytest.fixture
def hm_server(fakes: dict[str, FakeServer]) -> FakeServer:
    server = fakes["HighMobility"]
    server.account("owner", HM_CAR)
    return server


def hm_connect(
    server: FakeServer, account: str = "owner", scopes: list[str] = EVERY_SCOPE
) -> tuple[HighMobilityAdapter, AccountRef]:
    hm = HighMobilityAdapter(Credentials(APP_ID, APP_SECRET, server.url))
    url = hm.start_consent(
        state="s-1", callback_url=CALLBACK, scopes=scopes, user_id="x", code_verifier=VERIFIER
    )
    code = back_query(consent(url, account=account))["code"]
    tokens = hm.exchange_code(code, redirect_uri=CALLBACK, code_verifier=VERIFIER)
    return hm, AccountRef(tokens=tokens)


def test_high_mobility_reads_every_part_in_the_services_units(hm_server: FakeServer) -> None:
    """Fractions become percent, quantities their unit; times come from the properties."""
    r = reading(
        hm_server.fake,
        HM_CAR["vin"],
        battery_percent=58.0,
        range_km=240.5,
        capacity_kwh=83.9,
        plugged_in=True,
        charging=True,
        charge_rate_kw=11.0,
        charge_limit_percent=80.0,
        minutes_to_full=65.0,
        latitude=48.1351,
        longitude=11.582,
        odometer_km=4321.0,
    )
    hm, ref = hm_connect(hm_server)
    before = requests_made(hm_server)
    data = hm.read_data(ref, HM_CAR["vin"], ALL)
    assert requests_made(hm_server) == before + 1 and hm_server.fake.data_reads == 1
    assert data.battery is not None and data.charge is not None
    assert (data.battery.percentage, data.battery.range_km, data.battery.capacity_kwh) == (
        58.0,
        240.5,
        83.9,
    )
    assert (data.charge.is_plugged_in, data.charge.is_charging) == (True, True)
    assert (data.charge.charge_rate_kw, data.charge.charge_limit_percentage) == (11.0, 80.0)
    assert data.charge.time_remaining_minutes == 65.0
    assert data.location is not None
    assert (data.location.latitude, data.location.longitude) == (48.1351, 11.582)
    assert data.odometer is not None and data.odometer.value_km == 4321.0
    assert data.battery.updated_at == data.location.updated_at == at(r)
    assert data.problems == ()


def test_high_mobility_a_withheld_or_unasked_part_is_none(hm_server: FakeServer) -> None:
    """A capability without its permission is absent from the answer: its part is None,
    and so is a part not asked for."""
    hm_server.account("shy", HM_CAR, withheld=["vehicle:location"])
    hm, ref = hm_connect(hm_server, account="shy", scopes=["location", "charge_state"])
    data = hm.read_data(ref, HM_CAR["vin"], ALL)
    assert data.location is None and data.odometer is None and data.problems == ()
    assert data.battery is not None
    assert hm.read_data(ref, HM_CAR["vin"], {"location"}).battery is None


def test_high_mobility_miles_and_odd_shapes() -> None:
    """Miles become km; a property in an odd shape empties its part with a problem line,
    the other parts are read."""
    answer = {
        "charging": {
            "battery_level": {"data": 0.5, "timestamp": "2024-05-01T10:00:00Z"},
            "estimated_range": {"data": {"value": 100, "unit": "miles"}},
            "plugged_in": {"data": "sideways"},
        },
        "diagnostics": {"odometer": {"data": {"value": 10, "unit": "miles"}}},
        "vehicle_location": {"coordinates": {"data": [59.9, 10.7]}},
    }

    def crafted(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v1/vehicle-data/autoapi-13/{HM_CAR['vin']}"
        return httpx.Response(200, json=answer)

    hm = HighMobilityAdapter(
        Credentials(APP_ID, APP_SECRET, "http://hm.test"), transport=httpx.MockTransport(crafted)
    )
    data = hm.read_data(AccountRef(tokens=Tokens("t", None, None)), HM_CAR["vin"], ALL)
    assert data.battery is not None
    assert (data.battery.percentage, data.battery.range_km) == (50.0, 160.934)
    assert data.battery.updated_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert data.odometer is not None and data.odometer.value_km == 16.093
    assert data.charge is None and data.location is None
    assert [p.split(":")[0] for p in data.problems] == ["charge", "location"]
    assert "sideways" not in " ".join(data.problems)


def test_high_mobility_revoked_access(hm_server: FakeServer) -> None:
    """The user revoked the app at High Mobility: the data read is lost access."""
    hm, ref = hm_connect(hm_server)
    hm_server.fake.revoke_account("owner")
    with pytest.raises(PermanentError) as raised:
        hm.read_data(ref, HM_CAR["vin"], ALL)
    assert raised.value.reason is Reason.ACCESS_REVOKED


def test_high_mobility_refresh_keeps_its_refresh_token(hm_server: FakeServer) -> None:
    """High Mobility does not rotate: a refresh whose answer was lost is simply done again
    with the same refresh token, and the new access token reads the car."""
    assert HighMobilityAdapter.refreshes and not HighMobilityAdapter.single_use_refresh
    hm, ref = hm_connect(hm_server)
    tokens = ref.require_tokens()
    first = hm.refresh(tokens)
    again = hm.refresh(tokens)  # as if the first answer had been lost
    assert first.refresh_token == again.refresh_token == tokens.refresh_token
    assert len({tokens.access_token, first.access_token, again.access_token}) == 3
    assert hm_server.fake.refreshes == 2
    assert hm.read_data(AccountRef(tokens=again), HM_CAR["vin"], {"odometer"}).odometer
