"""Who may call is decided in one place: a Strawberry permission on every field of the
built schema (`api.graphql.context.Caller`, or `Admin` for the webhook endpoints),
checked before the resolver runs, over HTTP as over a WebSocket."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient
from strawberry.permission import PermissionExtension

from api.graphql import Context, build_schema
from api.graphql.context import Admin, Caller
from api.wakeups import Wakeups
from harness.tenant import Tenant
from settings import Settings
from store.db import Database
from tests.helpers.api import api_with, create_vehicle, gql
from tests.helpers.ws import connect, init, subscribe
from workflows.signing_secrets import SigningSecrets

WEBHOOK_FIELDS = {
    ("query", "webhookEndpoints"),
    ("mutation", "createWebhookEndpoint"),
    ("mutation", "rotateWebhookEndpointSecret"),
    ("mutation", "deleteWebhookEndpoint"),
}


def permissions(settings: Settings) -> dict[tuple[str, str], set[type]]:
    """Every root field of the built schema, with the permissions that guard it."""
    schema = build_schema(settings)
    roots = {
        "query": schema._schema.query_type,
        "mutation": schema._schema.mutation_type,
        "subscription": schema._schema.subscription_type,
    }
    guarded: dict[tuple[str, str], set[type]] = {}
    for operation, root in roots.items():
        assert root is not None, operation
        for name, field in root.fields.items():
            definition = field.extensions["strawberry-definition"]
            guarded[(operation, name)] = {
                type(permission)
                for extension in definition.extensions
                if isinstance(extension, PermissionExtension)
                for permission in extension.permissions
            }
    return guarded


def test_every_field_checks_its_caller(settings: Settings) -> None:
    guarded = permissions(settings)

    unguarded = sorted(field for field, held in guarded.items() if not held & {Caller, Admin})
    assert unguarded == []
    assert ("subscription", "connectedVehicle") in guarded
    assert len(guarded) >= 14  # the walk saw the schema (SPEC §3's fields and more)


def test_only_the_webhook_endpoints_need_an_administrator(settings: Settings) -> None:
    guarded = permissions(settings)

    assert {field for field, held in guarded.items() if Admin in held} == WEBHOOK_FIELDS


def test_a_resolver_no_permission_checked_cannot_read_the_caller(
    db: Database, settings: Settings
) -> None:
    ctx = Context(
        db,
        settings,
        {},
        signing_secrets=SigningSecrets(60),
        wakeups=Wakeups(settings.events_url),
    )
    with pytest.raises(RuntimeError, match="no permission checked the caller"):
        _ = ctx.caller


def first_answer(api: TestClient, headers: dict[str, str], vehicle_id: str) -> Any:
    with connect(api) as ws:
        init(ws, headers)
        subscribe(ws, "1", vehicle_id)
        return ws.receive_json()


def test_a_subscriber_without_a_valid_token_is_refused_before_it_starts(
    api: TestClient, tenant: Tenant
) -> None:
    vehicle_id = create_vehicle(api, tenant.headers())["id"]
    forged = {**tenant.headers(), "authorization": "Bearer not.a.jwt"}

    answer = first_answer(api, forged, vehicle_id)

    # graphql-transport-ws's `error`: the operation never started (no `next`, no `complete`)
    assert answer["type"] == "error" and answer["id"] == "1", answer
    assert [e["extensions"]["code"] for e in answer["payload"]] == ["AUTH_TOKEN_INVALID"]
    assert answer["payload"][0]["path"] == ["connectedVehicle"]


def test_a_subscriber_over_its_rate_is_told_so(settings: Settings, tenant: Tenant) -> None:
    """A WebSocket has no HTTP response to answer 429 on: the error alone says it."""
    headers = tenant.headers("ws-rate-user")
    with api_with(settings, rate_user_per_minute=1) as api:
        vehicle_id = create_vehicle(api, headers)["id"]  # the one request of the minute

        answer = first_answer(api, headers, vehicle_id)

    assert answer["type"] == "error", answer
    extensions = answer["payload"][0]["extensions"]
    assert extensions["code"] == "RATE_LIMIT_EXCEEDED"
    assert 1 <= extensions["retry_after"] <= 60


def test_an_administrator_is_a_caller_first(api: TestClient, tenant: Tenant) -> None:
    body = gql(api, "{ webhookEndpoints { id } }", headers={"x-client-id": tenant.client_id})

    assert [e["extensions"]["code"] for e in body["errors"]] == ["AUTH_TOKEN_INVALID"]
