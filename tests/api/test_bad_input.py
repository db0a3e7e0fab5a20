"""Bad input gets a clear error from SPEC §3's table and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from harness.tenant import Tenant, make_tenant
from providers.fakes.serve import FakeServer
from settings import Settings
from store.db import Database
from tests.helpers.api import AUTHORIZE, CREATE, GET, create_vehicle, error_code, gql
from tests.helpers.store import row_counts
from workflows.errors import ErrorCode
from workflows.machine import Lifecycle
from workflows.vehicles import lock

UPDATE = """mutation($input: UpdateConnectedVehicleInput!) {
  updateConnectedVehicle(input: $input) { id label } }"""


@pytest.fixture
def smartcar_only(clean: Database, smartcar: FakeServer) -> Tenant:
    """A client that has set up Smartcar and no other provider."""
    return make_tenant(clean, {"Smartcar": smartcar}, "Smartcar only")


def create_input(**overrides: Any) -> dict[str, Any]:
    return {
        "input": {
            "vehicle_id": "tesla-model-3",
            "provider": "Smartcar",
            "options": {"redirect_uri": "https://client.example/done"},
            **overrides,
        }
    }


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        pytest.param("{ connectedVehicleList { id ", None, "BAD_USER_INPUT", id="syntax"),
        pytest.param("{ connectedVehicleList { nope } }", None, "BAD_USER_INPUT", id="field"),
        pytest.param(
            CREATE, create_input(provider="Ford"), "BAD_USER_INPUT", id="unknown provider"
        ),
        pytest.param(
            CREATE,
            create_input(options={"redirect_uri": "javascript:alert(1)"}),
            "BAD_USER_INPUT",
            id="bad redirect_uri",
        ),
        pytest.param(
            CREATE, create_input(vehicle_id="no-such-car"), "VEHICLE_NOT_FOUND", id="catalogue"
        ),
        pytest.param(
            CREATE,
            create_input(provider="HighMobility"),
            "CONNECT_PROVIDER_NOT_SUPPORTED",
            id="provider not for this car",
        ),
        pytest.param(
            CREATE,
            create_input(provider="Enode"),
            "CONNECT_PROVIDER_NOT_ALLOWED",
            id="provider not configured",
        ),
        pytest.param(GET, {"id": "no-such-id"}, "CONNECTED_VEHICLE_NOT_FOUND", id="unknown id"),
        pytest.param(
            "{ connectedVehicleList(size: 1000) { id } }",
            None,
            "BAD_USER_INPUT",
            id="page too large",
        ),
        pytest.param(
            AUTHORIZE, {"input": {"id": "nope"}}, "CONNECTED_VEHICLE_NOT_FOUND", id="authorize"
        ),
        pytest.param(
            UPDATE,
            {"input": {"id": "nope", "label": "x"}},
            "CONNECTED_VEHICLE_NOT_FOUND",
            id="update",
        ),
        pytest.param(
            CREATE,
            create_input(options={"redirect_uri": "https://attacker.example/done"}),
            "BAD_USER_INPUT",
            id="unregistered redirect_uri",
        ),
        pytest.param(
            CREATE,
            create_input(options={"redirect_uri": "https://client.example/done?next=evil"}),
            "BAD_USER_INPUT",
            id="registered redirect_uri, other query",
        ),
        pytest.param(CREATE, create_input(label="x" * 201), "BAD_USER_INPUT", id="long label"),
        pytest.param(CREATE, create_input(label="a\x00b"), "BAD_USER_INPUT", id="NUL label"),
        pytest.param(
            CREATE,
            create_input(options={"redirect_uri": "https://c.example/" + "x" * 1000}),
            "BAD_USER_INPUT",
            id="long redirect_uri",
        ),
        pytest.param(CREATE, create_input(vehicle_id="a\x00b"), "BAD_USER_INPUT", id="NUL car"),
        pytest.param(
            CREATE,
            create_input(options={"redirect_uri": "https://client.example/done", "scope": []}),
            "BAD_USER_INPUT",
            id="empty scope",
        ),
        pytest.param(GET, {"id": "a\x00b"}, "BAD_USER_INPUT", id="NUL id"),
        pytest.param(
            UPDATE, {"input": {"id": "a\x00", "label": "x"}}, "BAD_USER_INPUT", id="NUL update"
        ),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    api: TestClient, smartcar_only: Tenant, query: str, variables: dict | None, code: str
) -> None:
    tenant = smartcar_only
    create_vehicle(api, tenant.headers())
    before = row_counts(tenant.db)

    body = gql(api, query, variables, tenant.headers())

    assert error_code(body) == code
    assert body["errors"][0]["extensions"]["exception"]["status"] == ErrorCode(code).status
    assert row_counts(tenant.db) == before


def test_the_provider_name_is_in_the_not_allowed_message(
    api: TestClient, smartcar_only: Tenant
) -> None:
    body = gql(api, CREATE, create_input(provider="Enode"), smartcar_only.headers())
    assert body["errors"][0]["message"] == (
        "The Connect provider Enode is not configured for your client id. "
        "Please contact customer support to enable it!"
    )


@pytest.mark.parametrize("who", ["another user", "another client"])
def test_someone_elses_vehicle_is_not_found(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, who: str
) -> None:
    vehicle = create_vehicle(api, tenant.headers("owner"))
    if who == "another user":
        headers = tenant.headers("someone-else")
    else:
        headers = make_tenant(tenant.db, {"Smartcar": smartcar}, "Other").headers("owner")
    before = row_counts(tenant.db)

    for query, variables in [
        (GET, {"id": vehicle["id"]}),
        (AUTHORIZE, {"input": {"id": vehicle["id"], "options": {"code": "c"}}}),
        (UPDATE, {"input": {"id": vehicle["id"], "label": "mine now"}}),
    ]:
        assert error_code(gql(api, query, variables, headers)) == "CONNECTED_VEHICLE_NOT_FOUND"
    listed = gql(api, "{ connectedVehicleList { id } }", None, headers)
    assert listed["data"]["connectedVehicleList"] == []
    assert row_counts(tenant.db) == before


def test_authorize_before_the_flow_is_finished_is_forbidden(
    api: TestClient, tenant: Tenant
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    body = gql(api, AUTHORIZE, {"input": {"id": vehicle["id"]}}, tenant.headers())
    assert error_code(body) == "CONNECTED_VEHICLE_FORBIDDEN"
    assert body["errors"][0]["extensions"]["exception"]["status"] == 403


@pytest.mark.parametrize(
    ("trigger", "kwargs"),
    [("remove", {}), ("fail", {"error": ErrorCode.AUTHORIZATION_DENIED})],
)
def test_authorize_answers_by_status(
    api: TestClient, tenant: Tenant, trigger: str, kwargs: dict
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    with tenant.db.session() as session:
        row = lock(session, vehicle["id"])
        assert row is not None
        Lifecycle(session, row).trigger_event(trigger, **kwargs)
        session.commit()

    body = gql(api, AUTHORIZE, {"input": {"id": vehicle["id"]}}, tenant.headers())

    expected = "CONNECTED_VEHICLE_NOT_PENDING" if trigger == "remove" else "AUTHORIZATION_DENIED"
    assert error_code(body) == expected


def test_update_changes_the_label_and_tells_of_it(api: TestClient, tenant: Tenant) -> None:
    from tests.helpers.store import events_of

    vehicle = create_vehicle(api, tenant.headers())
    body = gql(api, UPDATE, {"input": {"id": vehicle["id"], "label": "Blue"}}, tenant.headers())
    assert body["data"]["updateConnectedVehicle"] == {"id": vehicle["id"], "label": "Blue"}
    assert events_of(tenant.db, vehicle["id"])[-1] == "connected_vehicle.updated"


REMOVE = """mutation($input: RemoveConnectedVehicleInput!) {
  removeConnectedVehicle(input: $input) { id status } }"""


def test_a_vehicle_never_authorized_is_removed_at_once(api: TestClient, tenant: Tenant) -> None:
    from tests.helpers.store import events_of

    vehicle = create_vehicle(api, tenant.headers())
    body = gql(api, REMOVE, {"input": {"id": vehicle["id"]}}, tenant.headers())
    assert body["data"]["removeConnectedVehicle"] == {"id": vehicle["id"], "status": "removed"}
    assert events_of(tenant.db, vehicle["id"])[-1] == "connected_vehicle.removed"
    other = gql(api, REMOVE, {"input": {"id": vehicle["id"]}}, tenant.headers("someone-else"))
    assert error_code(other) == "CONNECTED_VEHICLE_NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [b"null", b'"a string"', b"42", b"true", b'{"query": "\xff\xfe"}', b"[" * 5000 + b"]" * 5000],
    ids=["null", "string", "number", "boolean", "invalid UTF-8", "deep nesting"],
)
def test_a_body_that_is_no_graphql_request_is_a_clear_400(
    api: TestClient, smartcar_only: Tenant, body: bytes
) -> None:
    before = row_counts(smartcar_only.db)

    answer = api.post(
        "/graphql",
        content=body,
        headers={**smartcar_only.headers(), "content-type": "application/json"},
    )

    assert answer.status_code == 400, answer.text
    assert row_counts(smartcar_only.db) == before


def test_an_ops_id_that_is_no_id_is_a_400(settings: Settings) -> None:
    from pydantic import SecretStr

    from api.app import create_app

    app = create_app(settings.model_copy(update={"ops_token": SecretStr("ops")}))
    with TestClient(app) as ops:
        answer = ops.post("/ops/vehicles/%00/redrive", headers={"authorization": "Bearer ops"})
    app.state.db.engine.dispose()
    assert answer.status_code == 400
