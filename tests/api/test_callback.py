"""`GET /oauth/callback`: the state is random, single use, bound to one vehicle, expiring;
a callback that cannot be used changes nothing and gets a 400 page."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import update
from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from store.models import OAuthState, utcnow
from tests.helpers.api import callback_path, create_vehicle
from tests.helpers.store import events_of, row_counts, vehicle_row


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_deny_fails_the_vehicle_and_sends_the_user_back(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"], decision="deny")

    response = api.get(callback_path(back))

    assert response.status_code == 303
    assert response.headers["location"].startswith(CLIENT_PAGE + "?")
    assert query(response.headers["location"]) == {
        "connected_vehicle_id": vehicle["id"],
        "status": "failed",
        "error": "AUTHORIZATION_DENIED",
    }
    row = vehicle_row(tenant.db, vehicle["id"])
    assert (row.status, row.failure_code) == ("failed", "AUTHORIZATION_DENIED")
    assert events_of(tenant.db, vehicle["id"]) == [
        "connected_vehicle.created",
        "connected_vehicle.failed",
    ]


def test_a_forged_state_changes_nothing(api: TestClient, tenant: Tenant) -> None:
    create_vehicle(api, tenant.headers())
    before = row_counts(tenant.db)
    response = api.get("/oauth/callback?state=forged-state&code=abc")
    assert response.status_code == 400
    assert "unknown state" in response.text
    assert row_counts(tenant.db) == before


def test_a_replayed_state_changes_nothing(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"], decision="deny")
    assert api.get(callback_path(back)).status_code == 303
    snapshot = vehicle_row(tenant.db, vehicle["id"])

    replay = api.get(callback_path(back))

    assert replay.status_code == 400
    assert "already used" in replay.text
    again = vehicle_row(tenant.db, vehicle["id"])
    assert (again.status, again.version) == (snapshot.status, snapshot.version)
    assert len(events_of(tenant.db, vehicle["id"])) == 2


def test_an_expired_state_changes_nothing(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"])
    with tenant.db.session() as session:
        session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    before = row_counts(tenant.db)

    response = api.get(callback_path(back))

    assert response.status_code == 400
    assert "expired" in response.text
    assert row_counts(tenant.db) == before
    assert vehicle_row(tenant.db, vehicle["id"]).auth_code is None


def test_a_callback_without_code_changes_nothing_and_keeps_the_state(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"], decision="deny")
    state = query(back)["state"]

    assert api.get(f"/oauth/callback?state={state}").status_code == 400
    assert api.get("/oauth/callback?code=abc").status_code == 400
    assert vehicle_row(tenant.db, vehicle["id"]).status == "pending"
    # the state was not spent: the real callback still works
    assert api.get(callback_path(back)).status_code == 303


def test_without_a_redirect_uri_the_user_gets_a_page(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers(), redirect_uri=None)
    back = consent(vehicle["authorization_url"], decision="deny")
    response = api.get(callback_path(back))
    assert response.status_code == 200
    assert "close this window" in response.text
