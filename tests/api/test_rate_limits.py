"""Request rates (SPEC §4): per client and per user, counted in Redis so that every web
process shares them; per source address on the OAuth callback, the providers' webhooks
and API requests without a valid token. Over a rate: RATE_LIMIT_EXCEEDED, HTTP 429,
`Retry-After` and `extensions.retry_after`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant
from settings import Settings
from tests.helpers.api import error_code, gql

LIST = "{ connectedVehicleList { id } }"


def app_with(settings: Settings, **rates: int) -> Iterator[TestClient]:
    from api.app import create_app

    app = create_app(settings.model_copy(update=rates))
    with TestClient(app) as client:
        yield client
    app.state.db.engine.dispose()


@pytest.fixture
def two_web_processes(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps, as two `web` processes would be: nothing shared but Redis."""
    rates = {"rate_user_per_minute": 5, "rate_client_per_minute": 8}
    first, second = app_with(settings, **rates), app_with(settings, **rates)
    yield next(first), next(second)
    for app in (first, second):
        next(app, None)


def test_a_users_rate_is_shared_by_every_web_process(
    two_web_processes: tuple[TestClient, TestClient], tenant: Tenant
) -> None:
    a, b = two_web_processes
    headers = tenant.headers("rate-user")
    answers = [gql(a if i % 2 else b, LIST, headers=headers) for i in range(5)]
    assert all("errors" not in answer for answer in answers)

    over = b.post("/graphql", json={"query": LIST}, headers=headers)

    assert over.status_code == 429
    assert 1 <= int(over.headers["retry-after"]) <= 60
    body = over.json()
    assert error_code(body) == "RATE_LIMIT_EXCEEDED"
    assert body["errors"][0]["extensions"]["retry_after"] == int(over.headers["retry-after"])
    assert body["errors"][0]["extensions"]["exception"]["status"] == 429


def test_a_clients_rate_covers_all_its_users(
    two_web_processes: tuple[TestClient, TestClient], tenant: Tenant
) -> None:
    a, b = two_web_processes
    statuses = [
        a.post("/graphql", json={"query": LIST}, headers=tenant.headers(f"user-{i}")).status_code
        for i in range(8)  # eight users, one request each: the client's eight
    ]
    assert statuses == [200] * 8, (statuses, tenant.client_id)

    over = b.post("/graphql", json={"query": LIST}, headers=tenant.headers("user-new"))

    assert over.status_code == 429
    assert error_code(over.json()) == "RATE_LIMIT_EXCEEDED"


def test_another_client_is_not_held_up(
    two_web_processes: tuple[TestClient, TestClient], tenant: Tenant
) -> None:
    from harness.tenant import make_tenant

    a, _ = two_web_processes
    for i in range(9):  # the client's eight, and one refused
        a.post("/graphql", json={"query": LIST}, headers=tenant.headers(f"user-{i}"))
    other = make_tenant(tenant.db, None, "Other")

    assert "errors" not in gql(a, LIST, headers=other.headers())


@pytest.fixture
def by_address(settings: Settings) -> Iterator[TestClient]:
    yield from app_with(settings, rate_address_per_minute=3)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/oauth/callback?state=forged&code=x"), ("POST", "/webhooks/enode")],
    ids=["callback", "provider webhooks"],
)
def test_unauthenticated_endpoints_are_limited_by_source_address(
    by_address: TestClient, clean: object, method: str, path: str
) -> None:
    statuses = [by_address.request(method, path).status_code for _ in range(3)]
    assert 429 not in statuses

    over = by_address.request(method, path)

    assert over.status_code == 429 and over.headers["retry-after"]


def test_a_request_is_counted_once_whatever_its_fields(settings: Settings, tenant: Tenant) -> None:
    """Two root fields resolve at once; they share one check of the caller, counted once."""
    both = "{ a: connectedVehicleList { id } b: vehicleList { id } }"
    headers = tenant.headers("two-fields")
    for client in app_with(settings, rate_user_per_minute=3):
        answers = [client.post("/graphql", json={"query": both}, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "errors" not in answers[2].json()
    assert {e["extensions"]["code"] for e in answers[3].json()["errors"]} == {"RATE_LIMIT_EXCEEDED"}


# -- callers without a valid token: per source address --------------------------------------


@contextmanager
def from_address(settings: Settings, address: str, per_minute: int = 3) -> Iterator[TestClient]:
    """The API as seen from `address`, with a low rate per source address."""
    from api.app import create_app

    app = create_app(settings.model_copy(update={"rate_address_per_minute": per_minute}))
    with TestClient(app, client=(address, 50000)) as client:
        yield client
    app.state.db.engine.dispose()


def an_address() -> str:
    """One of the test's own, so that no other test's requests count against it."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}"


def test_requests_without_a_valid_token_are_limited_by_source_address(
    settings: Settings, tenant: Tenant
) -> None:
    bad = [
        {},  # no token at all
        {**tenant.headers(), "authorization": "Bearer not-a-token"},
        tenant.headers(ttl=timedelta(minutes=-5)),  # expired
    ]
    with from_address(settings, an_address()) as api:
        refusals = [error_code(gql(api, LIST, headers=headers)) for headers in bad]
        over = api.post("/graphql", json={"query": LIST}, headers=bad[1])

    assert refusals == ["AUTH_TOKEN_INVALID", "AUTH_TOKEN_INVALID", "AUTH_TOKEN_EXPIRED"]
    assert over.status_code == 429
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert error_code(over.json()) == "RATE_LIMIT_EXCEEDED"
    assert over.json()["errors"][0]["extensions"]["retry_after"] == int(over.headers["retry-after"])


def test_valid_callers_are_not_counted_against_their_address(
    settings: Settings, tenant: Tenant
) -> None:
    """Six valid requests from an address allowed three a minute: none counted, none
    refused; a bad token still gets its three, and a valid caller still gets through."""
    with from_address(settings, an_address()) as api:
        valid = [
            api.post("/graphql", json={"query": LIST}, headers=tenant.headers()) for _ in range(6)
        ]
        refusals = [error_code(gql(api, LIST)) for _ in range(3)]
        over = api.post("/graphql", json={"query": LIST})
        still = api.post("/graphql", json={"query": LIST}, headers=tenant.headers())

    assert [a.status_code for a in valid] == [200] * 6
    assert all("errors" not in a.json() for a in valid)
    assert refusals == ["AUTH_TOKEN_INVALID"] * 3
    assert over.status_code == 429
    assert still.status_code == 200 and "errors" not in still.json()


def test_another_address_is_not_held_up(settings: Settings, clean: object) -> None:
    with from_address(settings, an_address()) as api:
        for _ in range(4):
            api.post("/graphql", json={"query": LIST})
    with from_address(settings, an_address()) as other:
        assert error_code(gql(other, LIST)) == "AUTH_TOKEN_INVALID"


def test_websocket_connections_without_a_valid_token_are_limited_by_address(
    settings: Settings, tenant: Tenant
) -> None:
    """The token comes in `connection_init` and is checked once per connection: each
    connection with a bad one counts, and the one over the rate is told so."""
    bad = {**tenant.headers(), "authorization": "Bearer not-a-token"}
    answers = []
    with from_address(settings, an_address()) as api:
        for _ in range(4):
            with api.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                ws.send_json({"type": "connection_init", "payload": bad})
                assert ws.receive_json()["type"] == "connection_ack"
                ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": LIST}})
                answers.append(ws.receive_json()["payload"]["errors"][0])

    codes = [a["extensions"]["code"] for a in answers]
    assert codes == ["AUTH_TOKEN_INVALID"] * 3 + ["RATE_LIMIT_EXCEEDED"]
    assert 1 <= answers[3]["extensions"]["retry_after"] <= 60
