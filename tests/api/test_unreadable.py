"""A vehicle the service cannot read fails alone on every path of the API and at the
OAuth callback (SPEC §6; issue 17 found each of them answering INTERNAL_SERVER_ERROR or
HTTP 500, and the row never marked): each answers CONNECTED_VEHICLE_UNREADABLE, changes
nothing, and marks the row, so operators find it (`cv vehicles list --unreadable`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from starlette.testclient import TestClient

from harness import cli
from harness.tenant import Tenant
from tests.helpers.api import GET, create_vehicle, error_code, gql

FOREIGN = Fernet(Fernet.generate_key())  # a key this service does not have

UPDATE = """mutation($input: UpdateConnectedVehicleInput!) {
  updateConnectedVehicle(input: $input) { id } }"""
AUTHORIZE = """mutation($input: AuthorizeConnectedVehicleInput!) {
  authorizeConnectedVehicle(input: $input) { id } }"""
REAUTHORIZE = """mutation($input: ReauthorizeConnectedVehicleInput!) {
  reauthorizeConnectedVehicle(input: $input) { id } }"""
REMOVE = """mutation($input: RemoveConnectedVehicleInput!) {
  removeConnectedVehicle(input: $input) { id } }"""
DATA = "query($id: ID!) { connectedVehicleData(id: $id) { id } }"
SUBSCRIBE = "subscription($id: ID!) { connectedVehicle(id: $id) { id status } }"


def poisoned(tenant: Tenant, api: TestClient) -> tuple[str, str]:
    """A pending vehicle made through the API, its authorization URL then overwritten
    under a foreign key (issue 17's probe); its id and its OAuth state."""
    vehicle = create_vehicle(api, tenant.headers())
    state = parse_qs(urlsplit(vehicle["authorization_url"]).query)["state"][0]
    with tenant.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE connected_vehicles SET authorization_url = :v WHERE id = :id"),
            {"v": FOREIGN.encrypt(b"https://p/x?state=VALUE").decode(), "id": vehicle["id"]},
        )
    return vehicle["id"], state


def snapshot(tenant: Tenant, vehicle_id: str) -> dict[str, Any]:
    with tenant.db.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, version, label, scope::text, unreadable_at, unreadable_reason, "
                "(SELECT count(*) FROM outbox_events e WHERE e.vehicle_id = v.id) AS events, "
                "(SELECT count(*) FROM oauth_states s WHERE s.vehicle_id = v.id "
                " AND s.used_at IS NULL) AS unused_states "
                "FROM connected_vehicles v WHERE id = :id"
            ),
            {"id": vehicle_id},
        ).one()
    return dict(row._mapping)


def unmark(tenant: Tenant, vehicle_id: str) -> None:
    with tenant.db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE connected_vehicles SET unreadable_at = NULL, unreadable_reason = NULL "
                "WHERE id = :id"
            ),
            {"id": vehicle_id},
        )


PATHS: list[tuple[str, Callable[[str], tuple[str, dict[str, Any]]]]] = [
    ("connectedVehicle", lambda vid: (GET, {"id": vid})),
    ("updateConnectedVehicle", lambda vid: (UPDATE, {"input": {"id": vid, "label": "x"}})),
    ("authorizeConnectedVehicle", lambda vid: (AUTHORIZE, {"input": {"id": vid}})),
    ("reauthorizeConnectedVehicle", lambda vid: (REAUTHORIZE, {"input": {"id": vid}})),
    ("removeConnectedVehicle", lambda vid: (REMOVE, {"input": {"id": vid}})),
    ("connectedVehicleData", lambda vid: (DATA, {"id": vid})),
]


@pytest.mark.parametrize(("name", "request_of"), PATHS, ids=[name for name, _ in PATHS])
def test_every_graphql_path_answers_unreadable_and_marks_the_row(
    api: TestClient,
    tenant: Tenant,
    name: str,
    request_of: Callable[[str], tuple[str, dict[str, Any]]],
) -> None:
    vehicle_id, _ = poisoned(tenant, api)
    before = snapshot(tenant, vehicle_id)
    assert before["unreadable_at"] is None

    query, variables = request_of(vehicle_id)
    body = gql(api, query, variables, tenant.headers())

    assert error_code(body) == "CONNECTED_VEHICLE_UNREADABLE", body
    assert body["errors"][0]["extensions"]["exception"]["status"] == 500
    assert "VALUE" not in str(body)
    after = snapshot(tenant, vehicle_id)
    assert after["unreadable_at"] is not None  # marked: operators see it
    assert "SecretKeyError" in after["unreadable_reason"]
    assert "VALUE" not in after["unreadable_reason"]
    unchanged = ("status", "version", "label", "scope", "events", "unused_states")
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}


def test_a_subscription_to_it_ends_with_unreadable(api: TestClient, tenant: Tenant) -> None:
    vehicle_id, _ = poisoned(tenant, api)

    with api.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": tenant.headers()})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE, "variables": {"id": vehicle_id}},
            }
        )
        answer = ws.receive_json()

    errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "CONNECTED_VEHICLE_UNREADABLE", answer
    assert snapshot(tenant, vehicle_id)["unreadable_at"] is not None


def test_its_callback_answers_a_clear_page_spends_nothing_and_marks_it(
    api: TestClient, tenant: Tenant
) -> None:
    vehicle_id, state = poisoned(tenant, api)
    before = snapshot(tenant, vehicle_id)

    page = api.get(f"/oauth/callback?state={state}&code=a-code")

    assert page.status_code == 500
    assert "cannot read this vehicle" in page.text
    assert state not in page.text and "a-code" not in page.text
    after = snapshot(tenant, vehicle_id)
    assert after["unreadable_at"] is not None
    assert after["unused_states"] == before["unused_states"] == 1  # the state is not spent
    assert after["status"] == "pending" and after["version"] == before["version"]

    # operators find it, and once it is mended (unmarked, here still unreadable) the
    # next reader marks it again
    env = dict(os.environ)
    listed = cli("vehicles", "list", "--unreadable", env=env)
    assert vehicle_id in listed and "SecretKeyError" in listed
    unmark(tenant, vehicle_id)
    assert error_code(gql(api, GET, {"id": vehicle_id}, tenant.headers())) == (
        "CONNECTED_VEHICLE_UNREADABLE"
    )
    assert snapshot(tenant, vehicle_id)["unreadable_at"] is not None


def test_a_list_shows_it_without_its_url_and_marks_it(api: TestClient, tenant: Tenant) -> None:
    good = create_vehicle(api, tenant.headers())["id"]
    bad, _ = poisoned(tenant, api)

    body = gql(api, "{ connectedVehicleList { id authorization_url } }", headers=tenant.headers())

    assert "errors" not in body, body
    listed = {v["id"]: v["authorization_url"] for v in body["data"]["connectedVehicleList"]}
    assert listed[bad] is None and listed[good]
    assert snapshot(tenant, bad)["unreadable_at"] is not None
    assert snapshot(tenant, good)["unreadable_at"] is None
