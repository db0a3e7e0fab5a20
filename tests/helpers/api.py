"""The API as its clients use it: GraphQL documents and calls, the OAuth callback's
path, an API of other settings, and documents over the request limits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.testclient import TestClient

from harness.tenant import CLIENT_PAGE
from settings import Settings

__all__ = [
    "ALIASES",
    "AUTHORIZE",
    "CREATE",
    "GET",
    "LIST",
    "TOKENS",
    "api_with",
    "callback_path",
    "create_vehicle",
    "error_code",
    "gql",
]

CREATE = """
mutation($input: CreateConnectedVehicleInput!) {
  createConnectedVehicle(input: $input) {
    id vehicle_id status authorization_url provider scope label vin
    failure { code message retryable } created_at updated_at authorized_at
  }
}"""

AUTHORIZE = """
mutation($input: AuthorizeConnectedVehicleInput!) {
  authorizeConnectedVehicle(input: $input) {
    id status vin failure { code message retryable } authorized_at
  }
}"""

GET = """query($id: ID!) { connectedVehicle(id: $id) {
  id status vin label failure { code retryable } } }"""

# The smallest list, and documents over the alias and token limits (SPEC §4).
LIST = "{ connectedVehicleList { id } }"
ALIASES = "{ " + " ".join(f"a{i}: connectedVehicleList {{ id }}" for i in range(16)) + " }"
TOKENS = "{ connectedVehicleList { " + "id " * 2100 + "} }"


def gql(
    client: TestClient | httpx.Client,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(body: dict[str, Any]) -> str:
    """The code of the only error, after checking the error's shape (SPEC §3)."""
    assert body.get("errors"), body
    assert len(body["errors"]) == 1, body
    ext = body["errors"][0]["extensions"]
    assert ext["code"] == ext["exception"]["code"]
    assert isinstance(ext["exception"]["status"], int)
    return str(ext["code"])


def create_vehicle(
    client: TestClient | httpx.Client,
    headers: dict[str, str],
    vehicle_id: str = "tesla-model-3",
    **options: Any,
) -> dict[str, Any]:
    body = gql(
        client,
        CREATE,
        {
            "input": {
                "vehicle_id": vehicle_id,
                "provider": "Smartcar",
                "label": "My car",
                "options": {"redirect_uri": CLIENT_PAGE, **options},
            }
        },
        headers,
    )
    assert "errors" not in body, body
    vehicle: dict[str, Any] = body["data"]["createConnectedVehicle"]
    return vehicle


def callback_path(location: str) -> str:
    """The path and query of where the provider sends the user back (our callback)."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


@contextmanager
def api_with(settings: Settings, **changes: Any) -> Iterator[TestClient]:
    """The API in process with some settings changed."""
    from api.app import create_app

    app = create_app(settings.model_copy(update=changes))
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.state.db.engine.dispose()
