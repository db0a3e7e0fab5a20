"""An authorized vehicle stays connected: its tokens refreshed before they expire (by the
refresh step that beat makes due), rotated pairs kept, one refresh however many race,
lost access made `deauthorized`, and a new consent on the same id. Every provider, over
HTTP against its fake, with a real worker and a real beat.

Time passes for both sides at once (``let_time_pass``): the fake's clock moves, and the
times the service stored (the token's expiry, the refresh's due time) move back by as
much, as if the service had waited."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant
from providers import ADAPTERS, Provider
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from store.db import Database
from store.models import ConnectedVehicle
from tests.helpers.api import callback_path, error_code, gql
from tests.helpers.journeys import REMOVE, authorize, create, journey
from tests.helpers.providers_table import BY_NAME, PROVIDERS, ProviderCase
from tests.helpers.store import events_of, vehicle_row
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import Receiver, endpoint_for

pytestmark = pytest.mark.usefixtures("worker", "beat")

CODE_FLOW = [c for c in PROVIDERS if c.flow == "code"]

DATA = """query($id: ID!) { connectedVehicleData(id: $id) {
  id fetched_at location { latitude longitude updated_at } odometer { value_km updated_at }
  battery { percentage } charge { is_charging } } }"""

REAUTHORIZE = """mutation($input: ReauthorizeConnectedVehicleInput!) {
  reauthorizeConnectedVehicle(input: $input) { id status authorization_url vin
    failure { code } } }"""


def authorized(api: TestClient, tenant: Tenant, case: ProviderCase, server: FakeServer) -> str:
    vehicle_id, body = journey(api, tenant, case, server, case.car)
    assert "errors" not in body, body
    return vehicle_id


def let_time_pass(db: Database, server: FakeServer, vehicle_id: str, seconds: float) -> None:
    server.fake.clock_offset += seconds
    with db.session() as session:
        row = session.get(ConnectedVehicle, vehicle_id)
        assert row is not None
        back = timedelta(seconds=seconds)
        if row.token_expires_at is not None:
            row.token_expires_at -= back
        if row.refresh_due_at is not None:
            row.refresh_due_at -= back
        session.commit()


def until_expiry(db: Database, vehicle_id: str) -> float:
    row = vehicle_row(db, vehicle_id)
    assert row.token_expires_at is not None
    from store.models import utcnow

    return (row.token_expires_at - utcnow()).total_seconds()


@pytest.fixture(params=CODE_FLOW, ids=str)
def code_case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=PROVIDERS, ids=str)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def test_tokens_are_refreshed_before_they_expire(
    api: TestClient, tenant: Tenant, code_case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """Beat makes the refresh due inside the margin; the new pair is committed and used,
    a rotated refresh token is dead at the provider, and no call ever goes out with an
    expired token, even once the first access token has expired at the provider."""
    server = fakes[code_case.name]
    vehicle_id = authorized(api, tenant, code_case, server)
    first = vehicle_row(tenant.db, vehicle_id)
    assert first.refresh_due_at is not None  # the next refresh is due from the start

    let_time_pass(tenant.db, server, vehicle_id, until_expiry(tenant.db, vehicle_id) - 300)
    wait_until(lambda: vehicle_row(tenant.db, vehicle_id).access_token != first.access_token)

    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.step) == ("authorized", None)
    assert row.token_expires_at and row.refresh_due_at
    assert row.refresh_due_at < row.token_expires_at
    assert server.fake.refreshes == 1
    rotates = ADAPTERS[Provider(code_case.name)].single_use_refresh
    if rotates:
        assert row.refresh_token != first.refresh_token
        assert first.refresh_token not in server.fake.refresh_tokens  # dead at the provider
    else:
        assert row.refresh_token == first.refresh_token
    assert row.refresh_token in server.fake.refresh_tokens

    let_time_pass(tenant.db, server, vehicle_id, 400)  # the first access token expired
    body = gql(api, DATA, {"id": vehicle_id}, tenant.headers())
    assert "errors" not in body, body
    assert body["data"]["connectedVehicleData"]["odometer"]["value_km"] > 0
    assert server.fake.expired_token_calls == 0


def test_two_refreshes_racing_reach_the_provider_once(
    api: TestClient, tenant: Tenant, code_case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """The refresh step sent twice and a data read, all at once with a token about to
    expire: one refresh at the provider (the row lock), the others find the new pair."""
    from workers.app import app

    server = fakes[code_case.name]
    vehicle_id = authorized(api, tenant, code_case, server)
    server.fake.latency = 0.3  # each call takes a while: the racers overlap
    with tenant.db.session() as session:
        row = session.get(ConnectedVehicle, vehicle_id)
        assert row is not None
        assert row is not None and row.token_expires_at is not None
        row.refresh_due_at = None  # beat stays out of it: the race is ours
        row.step = "refresh"
        left = until_expiry(tenant.db, vehicle_id)
        row.token_expires_at = row.token_expires_at - timedelta(seconds=left - 30)
        session.commit()

    app.send_task("cv.refresh_tokens", args=[vehicle_id])
    app.send_task("cv.refresh_tokens", args=[vehicle_id])
    body = gql(api, DATA, {"id": vehicle_id}, tenant.headers())

    assert "errors" not in body, body
    wait_until(lambda: vehicle_row(tenant.db, vehicle_id).step is None)
    assert server.fake.refresh_attempts == 1
    assert server.fake.expired_token_calls == 0


def lose_access_at_the_provider(
    api: TestClient, tenant: Tenant, case: ProviderCase, server: FakeServer, vehicle_id: str
) -> None:
    """The user revokes the app at the maker; the service finds out: a refused refresh
    (code flow), or a data read of a car gone from the account (Enode)."""
    server.fake.revoke_account("user")
    if case.flow == "code":
        let_time_pass(tenant.db, server, vehicle_id, until_expiry(tenant.db, vehicle_id) - 300)
    else:
        body = gql(api, DATA, {"id": vehicle_id}, tenant.headers())
        assert error_code(body) == "CONNECTED_VEHICLE_FORBIDDEN"
    wait_until(lambda: vehicle_row(tenant.db, vehicle_id).status == "deauthorized")


def test_lost_access_deauthorizes_with_its_event_and_webhook(
    api: TestClient,
    tenant: Tenant,
    case: ProviderCase,
    fakes: dict[str, FakeServer],
    receiver: Receiver,
) -> None:
    endpoint_for(tenant.db, tenant, receiver, ["connected_vehicle.deauthorized"])
    vehicle_id = authorized(api, tenant, case, fakes[case.name])

    lose_access_at_the_provider(api, tenant, case, fakes[case.name], vehicle_id)

    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.failure_code, row.failure_retryable) == ("ACCESS_REVOKED", False)
    assert (row.access_token, row.refresh_token, row.refresh_due_at) == (None, None, None)
    assert events_of(tenant.db, vehicle_id)[-1] == "connected_vehicle.deauthorized"
    wait_until(lambda: receiver.received)
    (hook,) = receiver.received
    assert hook["payload"]["type"] == "connected_vehicle.deauthorized"
    assert hook["payload"]["data"]["id"] == vehicle_id


def reauthorize(api: TestClient, tenant: Tenant, vehicle_id: str) -> dict:
    return gql(api, REAUTHORIZE, {"input": {"id": vehicle_id}}, tenant.headers())


def test_reauthorize_brings_the_same_vehicle_back(
    api: TestClient, tenant: Tenant, case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    server = fakes[case.name]
    vehicle_id = authorized(api, tenant, case, server)
    lose_access_at_the_provider(api, tenant, case, server, vehicle_id)

    body = reauthorize(api, tenant, vehicle_id)

    again = body["data"]["reauthorizeConnectedVehicle"]
    assert (again["id"], again["status"], again["failure"]) == (vehicle_id, "pending", None)
    assert again["authorization_url"]
    server.account("user", case.car)  # the user consents again, same car
    back = consent(again["authorization_url"], account="user")
    assert api.get(callback_path(back)).status_code == 303
    done = authorize(api, tenant, vehicle_id)
    assert "errors" not in done, done
    got = done["data"]["authorizeConnectedVehicle"]
    assert (got["id"], got["status"], got["vin"]) == (vehicle_id, "authorized", case.car["vin"])
    events = events_of(tenant.db, vehicle_id)
    since = events[events.index("connected_vehicle.deauthorized") :]
    assert since[1] == "connected_vehicle.pending"  # then the link is made (Enode)
    assert since[-1] == "connected_vehicle.authorized"


def test_reauthorize_with_another_car_is_a_mismatch(
    api: TestClient, tenant: Tenant, case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    server = fakes[case.name]
    vehicle_id = authorized(api, tenant, case, server)
    lose_access_at_the_provider(api, tenant, case, server, vehicle_id)
    url = reauthorize(api, tenant, vehicle_id)["data"]["reauthorizeConnectedVehicle"][
        "authorization_url"
    ]

    server.account("user", {**case.car, "vin": case.car["vin"][:-3] + "999"})
    api.get(callback_path(consent(url, account="user")))
    body = authorize(api, tenant, vehicle_id)

    assert error_code(body) == "CONNECTED_VEHICLE_MISMATCH"
    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.vin) == ("failed", case.car["vin"])


@pytest.mark.parametrize("status", ["authorized", "removed"])
def test_reauthorize_of_a_vehicle_not_lost_is_refused(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer], status: str
) -> None:
    case = PROVIDERS[0]
    vehicle_id = authorized(api, tenant, case, fakes[case.name])
    if status == "removed":
        gql(api, REMOVE, {"input": {"id": vehicle_id}}, tenant.headers())
    before = vehicle_row(tenant.db, vehicle_id)

    body = reauthorize(api, tenant, vehicle_id)

    assert error_code(body) == "ILLEGAL_TRANSITION"
    assert status in body["errors"][0]["message"]
    after = vehicle_row(tenant.db, vehicle_id)
    assert (after.status, after.version) == (before.status, before.version)


def test_reauthorize_with_an_empty_scope_is_bad_input(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    """`scope: []` would ask for no data at all: refused, nothing changed (left out, the
    vehicle keeps its own scope)."""
    case = PROVIDERS[0]
    server = fakes[case.name]
    vehicle_id = authorized(api, tenant, case, server)
    lose_access_at_the_provider(api, tenant, case, server, vehicle_id)
    before = vehicle_row(tenant.db, vehicle_id)

    body = gql(
        api, REAUTHORIZE, {"input": {"id": vehicle_id, "options": {"scope": []}}}, tenant.headers()
    )

    assert error_code(body) == "BAD_USER_INPUT"
    assert "scope" in body["errors"][0]["message"]
    after = vehicle_row(tenant.db, vehicle_id)
    assert (after.status, after.version, after.scope) == (
        before.status,
        before.version,
        before.scope,
    )


def test_a_lost_refresh_answer(
    api: TestClient, tenant: Tenant, code_case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """The provider refreshed, its answer never arrived. Where refresh tokens stay in
    force (High Mobility) the retry just works; where they are single use (Smartcar,
    Tesla) the retry is refused and the vehicle is deauthorized: its user consents again
    (docs/providers.md, "Staying connected")."""
    server = fakes[code_case.name]
    vehicle_id = authorized(api, tenant, code_case, server)
    assert code_case.token_path
    server.fault(code_case.token_path, 504, lose_answer=True)

    let_time_pass(tenant.db, server, vehicle_id, until_expiry(tenant.db, vehicle_id) - 300)

    if ADAPTERS[Provider(code_case.name)].single_use_refresh:
        wait_until(lambda: vehicle_row(tenant.db, vehicle_id).status == "deauthorized")
        assert vehicle_row(tenant.db, vehicle_id).failure_code == "ACCESS_REVOKED"
        assert server.fake.refresh_attempts == 2  # the lost one, and the refused retry
    else:
        wait_until(lambda: server.fake.refreshes == 2)
        wait_until(lambda: vehicle_row(tenant.db, vehicle_id).step is None)
        row = vehicle_row(tenant.db, vehicle_id)
        assert row.status == "authorized" and row.token_expires_at
        assert until_expiry(tenant.db, vehicle_id) > 3000  # the retry's new token


def test_a_401_a_fresh_token_cures_is_not_lost_access(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    """The provider drops an access token early (the user changed a password, say): one
    forced refresh, and the read goes through; the vehicle stays authorized."""
    case = BY_NAME["Smartcar"]
    server = fakes[case.name]
    vehicle_id = authorized(api, tenant, case, server)
    server.fake.tokens.clear()  # every access token dies; refresh tokens stay good

    body = gql(api, DATA, {"id": vehicle_id}, tenant.headers())

    assert "errors" not in body, body
    assert server.fake.refresh_attempts == 1
    assert vehicle_row(tenant.db, vehicle_id).status == "authorized"


def test_a_401_with_a_fresh_token_is_lost_access(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    """Refused again with a token just refreshed: the access is gone."""
    case = BY_NAME["Tesla"]
    server = fakes[case.name]
    vehicle_id = authorized(api, tenant, case, server)
    server.fault("/api/1/vehicles", 401, times=10)

    body = gql(api, DATA, {"id": vehicle_id}, tenant.headers())

    assert error_code(body) == "CONNECTED_VEHICLE_FORBIDDEN"
    assert server.fake.refresh_attempts == 1  # the one forced refresh
    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.failure_code) == ("deauthorized", "ACCESS_REVOKED")


def test_a_callback_of_the_earlier_flow_changes_nothing_after_reauthorize(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    """A new consent retires the states of the earlier one: its link is dead."""
    case = BY_NAME["Smartcar"]
    first = create(api, tenant, case, case.catalogue_id)["data"]["createConnectedVehicle"]
    old = dict(parse_qsl(urlsplit(first["authorization_url"]).query))["state"]
    failed = authorize(api, tenant, first["id"], code="not-a-code")
    assert error_code(failed) == "AUTH_CODE_INVALID"

    body = reauthorize(api, tenant, first["id"])
    assert body["data"]["reauthorizeConnectedVehicle"]["status"] == "pending"

    answer = api.get(f"/oauth/callback?state={old}&code=attacker-code")
    assert answer.status_code == 400
    row = vehicle_row(tenant.db, first["id"])
    assert (row.status, row.auth_code, row.step) == ("pending", None, None)


def test_lost_access_forgets_the_data_read_with_it(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    """No snapshot outlives the access it was read with: after a re-consent the first
    read fetches again, never the data from before."""
    from store.models import VehicleSnapshot

    case = BY_NAME["HighMobility"]
    server = fakes[case.name]
    vehicle_id = authorized(api, tenant, case, server)
    gql(api, DATA, {"id": vehicle_id}, tenant.headers())
    lose_access_at_the_provider(api, tenant, case, server, vehicle_id)

    with tenant.db.session() as session:
        assert session.get(VehicleSnapshot, vehicle_id) is None


def test_a_lost_answer_to_the_code_exchange_is_never_sent_again(
    api: TestClient, tenant: Tenant, code_case: ProviderCase, fakes: dict[str, FakeServer]
) -> None:
    """The provider spent the code and its answer was lost: the code is never sent
    again (the provider would refuse it, and some count a reuse as an attack); the
    vehicle fails AUTHORIZATION_INTERRUPTED, retryable, and a new consent on the same id
    connects it."""
    server = fakes[code_case.name]
    assert code_case.token_path
    server.fault(code_case.token_path, 504, lose_answer=True)

    vehicle_id, body = journey(api, tenant, code_case, server, code_case.car)

    assert error_code(body) == "AUTHORIZATION_INTERRUPTED"
    assert server.fake.exchange_attempts == 1
    row = vehicle_row(tenant.db, vehicle_id)
    assert (row.status, row.failure_retryable, row.code_claimed_at) == ("failed", True, None)

    url = reauthorize(api, tenant, vehicle_id)["data"]["reauthorizeConnectedVehicle"][
        "authorization_url"
    ]
    api.get(callback_path(consent(url, account="user")))
    done = authorize(api, tenant, vehicle_id)
    assert done["data"]["authorizeConnectedVehicle"]["status"] == "authorized", done


def test_an_exchange_refused_before_it_was_done_is_sent_again(
    api: TestClient, tenant: Tenant, fakes: dict[str, FakeServer]
) -> None:
    """A 503 did nothing: the claim is released and the same code goes again."""
    case = BY_NAME["Smartcar"]
    server = fakes[case.name]
    server.fault("/oauth/token", 503, times=1)

    _, body = journey(api, tenant, case, server, case.car)

    assert body["data"]["authorizeConnectedVehicle"]["status"] == "authorized", body
    assert server.fake.exchange_attempts == 1  # the 503 never reached the token endpoint
    assert server.fake.requests["/oauth/token"] == 2
