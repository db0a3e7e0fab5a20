"""A request's id, in the web: a caller's X-Request-ID is kept when it is plain, replaced
when it is not, and the web's lines name the client once the caller is authenticated.
(What the request sets in motion, its tasks' lines, events and the relay's messages:
tests/workers/test_correlation.py.)"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import logconfig
from harness.tenant import Tenant
from tests.helpers.api import create_vehicle, gql
from tests.helpers.logs import JsonLines
from tests.helpers.store import written_under_another_key

pytestmark = pytest.mark.usefixtures("worker")


def test_an_authenticated_requests_lines_name_its_client(
    api: TestClient, tenant: Tenant, json_lines: JsonLines
) -> None:
    # given a pending vehicle whose authorization URL this service cannot decrypt
    vehicle = create_vehicle(api, tenant.headers())
    written_under_another_key(tenant.db, vehicle["id"], "authorization_url")

    # when its client lists its vehicles (the URL decrypted in the web's thread)
    listed = gql(
        api,
        "{ connectedVehicleList { id authorization_url } }",
        headers={**tenant.headers(), "x-request-id": "list-1"},
    )

    # then the line the web logs about it names the request and the authenticated client
    assert listed["data"]["connectedVehicleList"] == [
        {"id": vehicle["id"], "authorization_url": None}
    ]
    unreadable = [
        line
        for line in json_lines()
        if line["logger"] == "workflows.unreadable" and vehicle["id"] in line["message"]
    ]
    assert unreadable, json_lines()
    assert all(line.get("request_id") == "list-1" for line in unreadable), unreadable
    assert all(line.get("client_id") == tenant.client_id for line in unreadable), unreadable


@pytest.mark.parametrize(
    "given", ["x" * 65, "evil\tid", "id with spaces", "<script>", "a\u00e9b", 'inj\\ect"']
)
def test_a_request_id_that_is_too_long_or_odd_is_replaced(api: TestClient, given: str) -> None:
    answer = api.get("/healthz", headers={"x-request-id": given.encode()})
    returned = answer.headers["x-request-id"]
    assert returned != given
    assert logconfig.well_formed(returned) and len(returned) == 32


def test_a_plain_request_id_is_kept_and_one_is_made_when_none_is_given(api: TestClient) -> None:
    assert api.get("/healthz", headers={"x-request-id": "Ab-1.2_3:4"}).headers["x-request-id"] == (
        "Ab-1.2_3:4"
    )
    first = api.get("/healthz").headers["x-request-id"]
    second = api.get("/healthz").headers["x-request-id"]
    assert first != second and logconfig.well_formed(first)
