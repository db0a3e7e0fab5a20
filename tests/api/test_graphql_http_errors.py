"""What the GraphQL view refuses before any GraphQL runs is a GraphQL error body, never
plain text: a subscription posted over HTTP, a body that is no JSON or no request, no
query, a content type the view does not read, a method it does not serve. Each answers
JSON with `errors[0].extensions.code` BAD_USER_INPUT and the HTTP status it stands for,
and nothing is written."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.testclient import TestClient

from api.graphql.refusals import SUBSCRIPTION_OVER_HTTP
from api.graphql.view import GraphQLApp
from harness.tenant import Tenant
from settings import Settings
from store.db import Database
from tests.helpers.store import row_counts

SUBSCRIBE = "subscription($id: ID!) { connectedVehicle(id: $id) { id status } }"
QUERY = "{ vehicleList { id } }"
JSON = {"content-type": "application/json"}


def refused(answer: httpx.Response, status: int = 400) -> str:
    """The message of the one error of a refusal, after checking its shape."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json", answer.text
    body = answer.json()
    assert set(body) == {"errors"}, body  # no `data`: nothing ran
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "exception": {"code": "BAD_USER_INPUT", "status": status},
    }
    message: str = error["message"]
    assert message
    return message


def test_a_subscription_posted_over_http_says_where_subscriptions_are_served(
    api: TestClient, tenant: Tenant
) -> None:
    # Given a document that subscribes, posted as GraphiQL posts a query
    answer = api.post(
        "/graphql",
        json={"query": SUBSCRIBE, "variables": {"id": "any"}},
        headers=tenant.headers(),
    )
    # Then it is a GraphQL error (GraphiQL shows it), saying to use the WebSocket
    message = refused(answer)
    assert message == SUBSCRIPTION_OVER_HTTP
    assert "subscriptions are not allowed" in message
    assert "WebSocket" in message and "graphql-transport-ws" in message
    assert "/graphql" in message


def test_a_subscription_over_get_gets_the_same_answer(api: TestClient, tenant: Tenant) -> None:
    answer = api.get(
        "/graphql",
        params={"query": SUBSCRIBE},
        headers={**tenant.headers(), "accept": "application/json"},
    )
    assert refused(answer) == SUBSCRIPTION_OVER_HTTP


Send = Callable[[TestClient, dict[str, str]], httpx.Response]

CASES: list[tuple[str, Send, str]] = [
    (
        "not JSON",
        lambda api, h: api.post("/graphql", content=b"{query", headers={**h, **JSON}),
        "not valid JSON",
    ),
    (
        "invalid UTF-8",
        lambda api, h: api.post(
            "/graphql", content=b'{"query": "\xff\xfe"}', headers={**h, **JSON}
        ),
        "not valid JSON",
    ),
    (
        "a JSON string",
        lambda api, h: api.post("/graphql", content=b'"query"', headers={**h, **JSON}),
        "must be a JSON object",
    ),
    (
        "no query",
        lambda api, h: api.post("/graphql", json={"variables": {}}, headers=h),
        "no GraphQL document",
    ),
    (
        "query null",
        lambda api, h: api.post("/graphql", json={"query": None}, headers=h),
        "no GraphQL document",
    ),
    (
        "GET without a query",
        lambda api, h: api.get("/graphql", headers={**h, "accept": "application/json"}),
        "no GraphQL document",
    ),
    (
        "query a number",
        lambda api, h: api.post("/graphql", json={"query": 5}, headers=h),
        "`query` must be a string",
    ),
    (
        "variables a list",
        lambda api, h: api.post("/graphql", json={"query": QUERY, "variables": [1]}, headers=h),
        "`variables` must be an object",
    ),
    (
        "text/plain",
        lambda api, h: api.post(
            "/graphql", content=QUERY.encode(), headers={**h, "content-type": "text/plain"}
        ),
        "content-type: application/json",
    ),
    (
        "form-encoded",
        lambda api, h: api.post("/graphql", data={"query": QUERY}, headers=h),
        "Unsupported content type",
    ),
    (
        "a batch",
        lambda api, h: api.post("/graphql", json=[{"query": QUERY}], headers=h),
        "one operation per request",
    ),
    (
        "a mutation over GET",
        lambda api, h: api.get(
            "/graphql",
            params={"query": 'mutation { removeConnectedVehicle(input: {id: "x"}) { id } }'},
            headers={**h, "accept": "application/json"},
        ),
        "send them with POST",
    ),
    (
        "an operation name the document lacks",
        lambda api, h: api.post(
            "/graphql",
            json={"query": "query A { vehicleList { id } }", "operationName": "B"},
            headers=h,
        ),
        'Unknown operation named "B"',
    ),
]


@pytest.mark.parametrize(("send", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_request_that_is_no_graphql_request_is_a_graphql_error(
    api: TestClient, tenant: Tenant, send: Send, says: str
) -> None:
    before = row_counts(tenant.db)
    message = refused(send(api, tenant.headers()))
    assert says in message
    assert row_counts(tenant.db) == before


@pytest.fixture
def view(db: Database, settings: Settings) -> TestClient:
    """The GraphQL view alone, as the router hands it a request."""
    return TestClient(GraphQLApp(db, settings))


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_a_method_the_view_does_not_serve_is_a_405_graphql_error(
    view: TestClient, method: str
) -> None:
    answer = view.request(method, "/", json={"query": QUERY})
    message = refused(answer, status=405)
    assert "GET" in message and "POST" in message and "WebSocket" in message
    assert answer.headers["allow"] == "GET, POST"


def test_a_query_over_the_view_still_answers(view: TestClient) -> None:
    """The refusals change nothing of what the view serves."""
    answer = view.post("/", json={"query": "{ __typename }"})
    assert answer.json() == {"data": {"__typename": "AllQueries"}}


def test_through_the_app_a_method_it_does_not_serve_is_a_graphql_error_too(
    api: TestClient,
) -> None:
    refused(api.put("/graphql", json={"query": QUERY}), status=405)
