"""An operator re-drives a failed vehicle from Flower in a real browser: logs in, finds
the failed step among the tasks, opens it and clicks Re-drive; the vehicle is pending
again, then authorized once the provider answers."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from harness import wait_for
from tests.helpers.browser import Browsing
from tests.helpers.stack import (
    FLOWER_LOGIN,
    GET_STATUS,
    Service,
    cv_in_process,
    graphql,
    operator_sets_up,
    walk,
)

pytestmark = pytest.mark.browser

VEHICLES = "/v2.0/vehicles"  # what validation asks the fake Smartcar first, after the code


def test_an_operator_redrives_a_failed_vehicle_from_flower(
    service: Service, browsing: Browsing
) -> None:
    # Given a vehicle that failed PROVIDER_UNAVAILABLE: Smartcar answered 503 every time
    headers = operator_sets_up(service, "ops", ["Smartcar"], cli=cv_in_process)
    faults = f"{service.fakes}/smartcar/_fake/faults"
    httpx.post(faults, json={"path": VEHICLES, "status": 503, "times": 1000})
    failed = walk(service, headers, "Smartcar", "tesla-model-3", want_errors=True)
    assert failed["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    vehicle_id = failed["vehicle_id"]

    def status() -> str:
        got = graphql(service.web, headers, GET_STATUS, id=vehicle_id)
        return str(got["data"]["connectedVehicle"]["status"])

    # When an operator logs in to Flower, lists the failed tasks and searches for the
    # vehicle among their arguments
    user, password = FLOWER_LOGIN
    page = browsing.new_page(http_credentials={"username": user, "password": password})
    search = page.get_by_role("searchbox")
    row = page.locator("#tasks-table tbody tr", has_text="cv.validate_authorization")

    def listed() -> bool:
        """Flower hears of the failure over the event stream: reload until it has."""
        page.goto(f"{service.flower}/tasks")
        page.get_by_role("button", name="Failed").click()
        expect(search).to_have_value("state:FAILURE")
        search.fill(f"state:FAILURE args:{vehicle_id}")
        try:
            row.wait_for(timeout=2000)
        except PlaywrightTimeoutError:
            return False
        return True

    wait_for(listed, "the failed step in Flower's Failed tasks", timeout=30)
    expect(page.locator("#tasks-table_info")).to_have_text("Showing 1 to 1 of 1 tasks")
    expect(row).to_contain_text("FAILURE")

    # and opens the task: the vehicle's step, failed, with a Re-drive button
    row.locator("a[href*='/task/']").first.click()
    page.wait_for_url(f"{service.flower}/task/*")
    expect(page.locator("body")).to_contain_text(vehicle_id)
    expect(page.locator("body")).to_contain_text("PROVIDER_UNAVAILABLE")
    expect(page.locator("#cv-redrive")).to_contain_text("Re-drive")

    # The provider is back, but its first two answers time out (the fakes' processes run
    # with a 2 s provider timeout, 3 tries): the re-driven step takes a few seconds
    httpx.delete(faults)
    httpx.post(faults, json={"path": VEHICLES, "status": 503, "times": 2, "delay": 3})
    assert status() == "failed"

    # When they click Re-drive
    page.locator("#task-redrive").click()

    # Then the page says it was re-driven, and the vehicle is pending again...
    expect(page.locator("#cv-outcome-title")).to_have_text("Re-driven")
    expect(page.locator("#cv-outcome")).to_have_text(
        f"Vehicle {vehicle_id}: now pending, step validate"
    )
    assert status() == "pending"
    # ...until the worker validates it
    wait_for(lambda: status() == "authorized", "the re-driven vehicle authorized", timeout=30)
    # and the result page links to the vehicle's history
    expect(page.locator("#cv-outcome-vehicle")).to_have_attribute(
        "href", f"/cv/vehicles/{vehicle_id}"
    )

    # The failed task's page, opened again, tells the truth: its vehicle is authorized
    # since, with a link to its history, and no Re-drive is offered any more
    page.go_back()
    page.reload()
    expect(page.locator("#cv-vehicle-status")).to_contain_text("now authorized since")
    expect(page.locator("#cv-vehicle-link")).to_have_attribute("href", f"/cv/vehicles/{vehicle_id}")
    expect(page.locator("#cv-redrive")).to_have_count(0)
    assert browsing.offsite == []
