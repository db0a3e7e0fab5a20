"""A user connects a car in a real browser, at every provider: the client creates the
vehicle, the user opens its `authorization_url`, presses Allow on the provider's (fake)
consent page, and lands on the client's page with `connected_vehicle_id` and `status`;
then the worker validates and the vehicle is authorized."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from harness import cli, wait_for
from tests.helpers.browser import Browsing
from tests.helpers.stack import JOURNEYS, Service, cv_in_process, graphql, operator_sets_up

pytestmark = pytest.mark.browser

CREATE = """mutation($input: CreateConnectedVehicleInput!) {
  createConnectedVehicle(input: $input) { id status authorization_url } }"""
AUTHORIZE = """mutation($input: AuthorizeConnectedVehicleInput!) {
  authorizeConnectedVehicle(input: $input) { id status vin } }"""
AUTHORIZATION_URL = "query($id: ID!) { connectedVehicle(id: $id) { authorization_url } }"


def shown_on(page: Page) -> dict[str, str]:
    """The client page's table of what it was sent back with."""
    rows = page.locator("table tr")
    return {
        rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").inner_text()
        for i in range(rows.count())
    }


def authorization_url(service: Service, headers: dict[str, str], created: dict) -> str:
    """The vehicle's authorization URL. Enode's link comes from a job: when the mutation
    answered without it, ask again until it is there."""
    url: list[str] = [created["authorization_url"] or ""]

    def known() -> bool:
        if not url[0]:
            got = graphql(service.web, headers, AUTHORIZATION_URL, id=created["id"])
            url[0] = got["data"]["connectedVehicle"]["authorization_url"] or ""
        return bool(url[0])

    wait_for(known, "the authorization URL", timeout=20)
    return url[0]


def test_a_user_consents_in_the_browser_at_every_provider(
    service: Service, browsing: Browsing
) -> None:
    # Given a client at every provider, whose page (the demo's, on loopback) is registered
    headers = operator_sets_up(service, "browser", [p for p, _, _ in JOURNEYS], cli=cv_in_process)
    client_page = f"{service.fakes}/smartcar/_fake/client-return"
    cli("client", "add-redirect-uri", "browser", client_page, env=service.env)
    page = browsing.new_page()

    for provider, car, vin in JOURNEYS:
        # When the client creates a vehicle...
        created = graphql(
            service.web,
            headers,
            CREATE,
            input={
                "vehicle_id": car,
                "provider": provider,
                "options": {"redirect_uri": client_page},
            },
        )["data"]["createConnectedVehicle"]
        assert created["status"] == "pending", provider
        url = authorization_url(service, headers, created)

        # ...and the user opens its authorization URL, logs in as "demo" and allows
        page.goto(url)
        assert "(fake)" in page.title(), provider
        page.select_option('select[name="account"]', "demo")
        page.get_by_role("button", name="Allow").click()

        # Then the browser went through the service's callback to the client's page,
        # which shows the vehicle and its status (pending: the worker validates next)
        page.wait_for_url(f"{client_page}?*")
        assert any(u.startswith(f"{service.web}/oauth/callback?") for u in browsing.visited), (
            provider
        )
        assert page.locator("h1").inner_text() == "Back at the client app"
        shown = shown_on(page)
        assert shown == {"connected_vehicle_id": created["id"], "status": "pending"}, provider
        assert f"connected_vehicle_id={created['id']}" in page.url

        # and the worker validates the consent: the vehicle is authorized, with its VIN
        done = graphql(service.web, headers, AUTHORIZE, input={"id": created["id"]})
        vehicle = done["data"]["authorizeConnectedVehicle"]
        assert (vehicle["status"], vehicle["vin"]) == ("authorized", vin), (provider, done)
        browsing.visited.clear()

    assert browsing.offsite == []
