"""A client's webhook endpoints are its own (SPEC §3): another client's administrator
can neither list, rotate (and so receive the signing secret of) nor delete one, even by
its id; they are answered as for an endpoint that does not exist, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant, make_tenant
from store.db import Database
from store.models import WebhookEndpoint
from tests.helpers.api import gql

CREATE = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { id url secret } }"""
LIST = "{ webhookEndpoints { id url enabled secret } }"
ROTATE = """mutation($input: WebhookEndpointIdInput!) {
  rotateWebhookEndpointSecret(input: $input) { id secret } }"""
DELETE = """mutation($input: WebhookEndpointIdInput!) {
  deleteWebhookEndpoint(input: $input) }"""

UNKNOWN = "00000000-0000-4000-8000-000000000000"  # an id no endpoint has


def endpoint_row(db: Database, endpoint_id: str) -> tuple[str, str | None, bool, str | None]:
    with db.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row.secret, row.previous_secret, row.enabled, row.disabled_reason


@pytest.fixture
def endpoint(api: TestClient, tenant: Tenant) -> dict[str, Any]:
    """The first client's endpoint, made by its administrator: its id and secret."""
    made = gql(
        api, CREATE, {"input": {"url": "http://127.0.0.1:9/hooks"}}, tenant.headers(admin=True)
    )
    endpoint: dict[str, Any] = made["data"]["createWebhookEndpoint"]
    assert endpoint["secret"].startswith("whsec_")
    return endpoint


@pytest.fixture
def other_admin(tenant: Tenant) -> dict[str, str]:
    """An administrator's headers, of another client."""
    return make_tenant(tenant.db, None, "Other").headers(admin=True)


def test_another_clients_admin_does_not_list_it(
    api: TestClient, tenant: Tenant, endpoint: dict[str, Any], other_admin: dict[str, str]
) -> None:
    theirs = gql(api, LIST, headers=other_admin)
    ours = gql(api, LIST, headers=tenant.headers(admin=True))

    assert theirs == {"data": {"webhookEndpoints": []}}
    assert [e["id"] for e in ours["data"]["webhookEndpoints"]] == [endpoint["id"]]


@pytest.mark.parametrize("mutation", [ROTATE, DELETE], ids=["rotate", "delete"])
def test_another_clients_admin_cannot_touch_it_by_its_id(
    api: TestClient,
    tenant: Tenant,
    endpoint: dict[str, Any],
    other_admin: dict[str, str],
    mutation: str,
) -> None:
    before = endpoint_row(tenant.db, endpoint["id"])

    answer = gql(api, mutation, {"input": {"id": endpoint["id"]}}, other_admin)
    unknown = gql(api, mutation, {"input": {"id": UNKNOWN}}, other_admin)

    # answered exactly as for an endpoint that does not exist, with no secret in it
    assert answer["data"] is None and unknown["data"] is None
    assert answer["errors"] == unknown["errors"]
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "whsec_" not in str(answer)
    # and the endpoint is as it was: same secret, no previous one, still enabled
    assert endpoint_row(tenant.db, endpoint["id"]) == before
    assert before[0] == endpoint["secret"] and before[1:] == (None, True, None)
