"""Who may call: `x-client-id` plus a user JWT signed with that client's secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant, make_tenant
from tests.helpers.api import GET, error_code, gql

LIST = "{ connectedVehicleList { id } }"


def test_a_valid_token_is_accepted(api: TestClient, tenant: Tenant) -> None:
    body = gql(api, LIST, headers=tenant.headers())
    assert body == {"data": {"connectedVehicleList": []}}


def test_an_expired_token(api: TestClient, tenant: Tenant) -> None:
    body = gql(api, LIST, headers=tenant.headers(ttl=timedelta(seconds=-5)))
    assert error_code(body) == "AUTH_TOKEN_EXPIRED"
    assert body["errors"][0]["message"] == "The token you provided is expired"
    assert body["errors"][0]["extensions"]["exception"]["status"] == 401


@pytest.mark.parametrize(
    ("ttl", "accepted"),
    [(timedelta(hours=23), True), (timedelta(hours=25), False), (timedelta(days=2_900_000), False)],
    ids=["23 h", "25 h", "year 9999"],
)
def test_a_token_lives_at_most_a_day(
    api: TestClient, tenant: Tenant, ttl: timedelta, accepted: bool
) -> None:
    """A token that never ends is a credential no one can take back (SPEC §3)."""
    body = gql(api, LIST, headers=tenant.headers(ttl=ttl))
    if accepted:
        assert "errors" not in body, body
    else:
        assert error_code(body) == "AUTH_TOKEN_INVALID"


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "user-1", "exp": datetime.now(UTC) + timedelta(hours=1), **extra}


@pytest.mark.parametrize(
    "make_headers",
    [
        pytest.param(lambda t: {}, id="no headers"),
        pytest.param(lambda t: {"x-client-id": t.client_id}, id="no token"),
        pytest.param(lambda t: {**t.headers(), "x-client-id": "cli_unknown"}, id="unknown client"),
        pytest.param(
            lambda t: {"x-client-id": t.client_id, "authorization": "Bearer not.a.jwt"},
            id="malformed",
        ),
        pytest.param(
            lambda t: {
                "x-client-id": t.client_id,
                "authorization": "Bearer "
                + jwt.encode(claims(), "another secret-of-32-bytes-or-more"),
            },
            id="forged signature",
        ),
        pytest.param(
            lambda t: {
                "x-client-id": t.client_id,
                "authorization": "Bearer "
                + jwt.encode({"sub": "user-1"}, t.signing_secret, algorithm="HS256"),
            },
            id="no exp",
        ),
        pytest.param(
            lambda t: {
                "x-client-id": t.client_id,
                "authorization": "Bearer " + jwt.encode(claims(), "", algorithm="none"),
            },
            id="alg none",
        ),
    ],
)
def test_invalid_tokens(api: TestClient, tenant: Tenant, make_headers) -> None:
    body = gql(api, LIST, headers=make_headers(tenant))
    assert error_code(body) == "AUTH_TOKEN_INVALID"
    assert body["errors"][0]["message"] == "The token you provided is invalid"


def test_another_clients_token_does_not_open_this_client(api: TestClient, tenant: Tenant) -> None:
    other = make_tenant(tenant.db, None, "Other")
    headers = {**other.headers(), "x-client-id": tenant.client_id}
    assert error_code(gql(api, GET, {"id": "x"}, headers)) == "AUTH_TOKEN_INVALID"
