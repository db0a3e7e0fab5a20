"""What one request may cost (SPEC §4): a body over the cap is 413 before it is read whole;
a document over its depth, alias or token limit is BAD_USER_INPUT before anything runs
(before authentication: these requests carry no credentials at all)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from api.graphql.schema import CACHE_SIZE
from api.limits import BodyLimit
from harness.tenant import Tenant
from settings import Settings
from tests.helpers.api import ALIASES, LIST, TOKENS, error_code, gql


def test_a_body_over_the_cap_is_413(api: TestClient, settings: Settings) -> None:
    padding = "x" * (settings.request_max_bytes + 1)
    answer = api.post("/graphql", json={"query": LIST, "variables": {"pad": padding}})
    assert answer.status_code == 413
    assert str(settings.request_max_bytes) in answer.json()["error"]


def test_a_body_over_the_cap_is_not_read_whole() -> None:
    """Streamed with no Content-Length: the middleware stops reading at the cap."""
    import asyncio

    read = 0
    chunks = [b"x" * 1024] * 1000  # a megabyte the client would send

    async def receive() -> dict[str, object]:
        nonlocal read
        chunk = chunks[read]
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < len(chunks)}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("the app must not run")

    limit = BodyLimit(app, max_bytes=64 * 1024)
    asyncio.run(limit({"type": "http", "headers": []}, receive, send))  # type: ignore[arg-type]

    assert sent[0]["status"] == 413
    assert read == 65  # 64 KiB and the chunk that went over, of 1,000


@pytest.mark.parametrize("query", [ALIASES, TOKENS], ids=["16 aliases", "2,100 tokens"])
def test_a_document_over_a_limit_is_bad_user_input_before_anything_runs(
    api: TestClient, query: str
) -> None:
    """No credentials sent: had it run, the answer would be AUTH_TOKEN_INVALID."""
    assert error_code(gql(api, query)) == "BAD_USER_INPUT"
    assert error_code(gql(api, LIST)) == "AUTH_TOKEN_INVALID"  # what running looks like


def test_a_deep_document_is_bad_user_input(api: TestClient) -> None:
    """The schema is shallow, so depth is a hostile document's shape: it is refused for
    its depth, whatever else is wrong with it."""
    deep = "{ vehicleList { " + "connect { " * 12 + "providers" + " }" * 12 + " } }"
    body = gql(api, deep)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert any("exceeds maximum operation depth" in e["message"] for e in body["errors"])


def test_graphiqls_introspection_is_within_the_limits(api: TestClient) -> None:
    from graphql import get_introspection_query

    body = gql(api, get_introspection_query())
    assert "errors" not in body, body["errors"][:1]
    assert body["data"]["__schema"]["queryType"]["name"]


@pytest.fixture
def closed_api(settings: Settings) -> Iterator[TestClient]:
    from api.app import create_app

    app = create_app(settings.model_copy(update={"graphql_introspection": False}))
    with TestClient(app) as client:
        yield client
    app.state.db.engine.dispose()


def test_introspection_can_be_turned_off(closed_api: TestClient, tenant: Tenant) -> None:
    body = gql(closed_api, "{ __schema { queryType { name } } }", headers=tenant.headers())
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert "errors" not in gql(closed_api, LIST, headers=tenant.headers())


def test_within_the_limits_works(api: TestClient, tenant: Tenant) -> None:
    body = gql(api, LIST, headers=tenant.headers())
    assert body == {"data": {"connectedVehicleList": []}}


def test_a_document_asked_again_is_not_validated_again(api: TestClient, tenant: Tenant) -> None:
    """The limits' rules are part of the validation cache's key: made per request, they
    missed it every time, and every document was validated again."""
    from functools import _lru_cache_wrapper
    from typing import Any, cast

    from strawberry.extensions.validation_cache import _get_validate_cache

    cache = cast("_lru_cache_wrapper[Any]", _get_validate_cache(CACHE_SIZE))
    query = "{ connectedVehicleList { id label } }"  # this test's own document
    gql(api, query, headers=tenant.headers())
    before = cache.cache_info()

    for _ in range(3):
        assert "errors" not in gql(api, query, headers=tenant.headers())

    after = cache.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 3
