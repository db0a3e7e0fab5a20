"""The database away (SPEC §6): the API answers SERVICE_UNAVAILABLE (503, retryable,
`Retry-After`), never an internal error; a user back from consent gets a page that asks
to reload, and the reload completes the flow, because nothing was spent. The web here
is pointed at a database that refuses every connection, as one that is restarting
does; the vehicle's rows live in the real one."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from api import callback
from harness.tenant import CLIENT_PAGE, Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from settings import Settings
from store.db import Database
from tests.helpers.api import create_vehicle
from tests.helpers.store import row_counts, vehicle_row
from workflows.authorization import CallbackError, receive_callback

AWAY = "postgresql+psycopg://postgres@127.0.0.1:1/nothing-listens-here"
LIST = "{ connectedVehicleList { id } }"


@pytest.fixture
def web_without_database(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    from api.app import create_app

    # the callback's own tries, shortened: the test waits for them
    monkeypatch.setattr(callback, "PAUSES", (0.05, 0.05))
    app = create_app(settings.model_copy(update={"database_url": AWAY}))
    with TestClient(app, follow_redirects=False) as client:
        yield client
    app.state.db.engine.dispose()


def test_graphql_answers_service_unavailable(
    web_without_database: TestClient, tenant: Tenant
) -> None:
    answer = web_without_database.post("/graphql", json={"query": LIST}, headers=tenant.headers())

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    (error,) = answer.json()["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["exception"] == {"code": "SERVICE_UNAVAILABLE", "status": 503}
    assert error["extensions"]["retryable"] is True
    assert "INTERNAL" not in answer.text


def test_a_user_back_from_consent_is_asked_to_reload_and_the_reload_works(
    web_without_database: TestClient, api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    back = urlsplit(consent(vehicle["authorization_url"]))
    path = f"{back.path}?{back.query}"
    before = row_counts(tenant.db)

    page = web_without_database.get(path)

    assert page.status_code == 503
    assert page.headers["retry-after"] == str(callback.RELOAD_SECONDS)
    assert "reload" in page.text and 'http-equiv="refresh"' in page.text
    assert parse_qs(back.query)["code"][0] not in page.text
    assert row_counts(tenant.db) == before  # nothing spent

    reloaded = api.get(path)  # the database is back

    assert reloaded.status_code == 303
    assert reloaded.headers["location"].startswith(CLIENT_PAGE + "?")
    assert vehicle_row(tenant.db, vehicle["id"]).code_received_at is not None


def test_a_resumed_callback_takes_its_own_spent_state(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, clean: Database
) -> None:
    """A try whose commit went through but whose answer was lost spent the state: the
    same request's next try (`resumed`) answers the vehicle as it stands. Any other
    request with that state is a replay: refused, nothing changed."""
    vehicle = create_vehicle(api, tenant.headers())
    q = parse_qs(urlsplit(consent(vehicle["authorization_url"])).query)
    state, code = q["state"][0], q["code"][0]
    with clean.session() as session:
        receive_callback(session, state, code, None)  # the try whose answer was lost

    with clean.session() as session:
        outcome = receive_callback(session, state, code, None, resumed=True)
    with clean.session() as session, pytest.raises(CallbackError, match="already used"):
        receive_callback(session, state, code, None)

    assert (outcome.vehicle_id, outcome.status, outcome.error) == (vehicle["id"], "pending", None)
