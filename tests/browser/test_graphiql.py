"""GraphiQL in a real browser with no network but loopback: the page, its scripts and
styles all come from the service, the editor opens on the demo's example document, the
form sets the two headers, and a query typed in the editor runs with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import Browsing
from tests.helpers.stack import Service, cv_in_process, graphql, operator_sets_up

pytestmark = pytest.mark.browser

QUERY = "{ connectedVehicleList { id label status } }"
EXAMPLE = Path(__file__).resolve().parents[2] / "api/graphiql/static/cv-example.graphql"


def test_graphiql_loads_offline_and_runs_a_query(service: Service, browsing: Browsing) -> None:
    # Given a user of a client with one vehicle
    headers = operator_sets_up(service, "graphiql", ["Smartcar"], cli=cv_in_process)
    created = graphql(
        service.web,
        headers,
        """mutation($input: CreateConnectedVehicleInput!) {
             createConnectedVehicle(input: $input) { id } }""",
        input={"vehicle_id": "tesla-model-3", "provider": "Smartcar", "label": "In GraphiQL"},
    )["data"]["createConnectedVehicle"]

    # When they open /graphql in a browser that reaches loopback only
    page = browsing.new_page()
    page.goto(f"{service.web}/graphql")

    # Then GraphiQL is up (its editors drawn), asking for the headers
    expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible()
    expect(page.locator("#cv-status")).to_have_text(
        "No headers yet: fill in the client id and a user token, then Apply"
    )
    # and its editor holds the demo's example, not GraphiQL's stock text
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    page.wait_for_function(
        "() => document.querySelector('.graphiql-query-editor .CodeMirror')"
        ".CodeMirror.getValue().includes('mutation Create')"
    )
    assert editor.evaluate("node => node.CodeMirror.getValue()") == EXAMPLE.read_text()

    # When they fill the form, Apply, type a query and run it
    page.fill("#cv-client-id", headers["x-client-id"])
    page.fill("#cv-token", headers["authorization"].removeprefix("Bearer "))
    page.click("#cv-apply")
    expect(page.locator("#cv-status")).to_have_text("Headers set for client graphiql")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(QUERY)
    page.wait_for_timeout(1000)  # GraphiQL reads the editor's text a moment later
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()

    # Then the answer, made with their headers, lists their vehicle
    response = page.locator(".graphiql-response .CodeMirror")
    expect(response).to_contain_text(created["id"])
    answer = json.loads(response.evaluate("node => node.CodeMirror.getValue()"))
    assert answer == {
        "data": {
            "connectedVehicleList": [
                {"id": created["id"], "label": "In GraphiQL", "status": "pending"}
            ]
        }
    }
    # and nothing was asked of anywhere but the service, nothing refused by the CSP
    assert browsing.offsite == []
    assert {u.split("/")[2] for u in browsing.visited} == {service.web.split("/")[2]}
    assert browsing.errors == []
