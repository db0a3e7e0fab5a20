"""The operator's day in the console (SPEC §8), in a real browser: a provider fails 50
vehicles; the Vehicles view counts them by code and provider (in a Flower started after
they failed, too: it reads the database); a filter finds them; a dry run counts 50; the
run with a reason re-drives them, its page shows progress and results; all 50 end
authorized; one vehicle's page shows its failed attempts with the provider's 503 and the
re-drive in its operators' actions. Around it, what an operator must never meet: a page
open without a login, a cross-site POST, a search that runs as SQL or HTML."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from harness import answers, free_port, process, procfile_argv, wait_for
from store.db import Database
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
from tests.helpers.store import vehicle_row

pytestmark = pytest.mark.browser

VEHICLES = "/v2.0/vehicles"  # what validation asks the fake Smartcar first, after the code
FAILED = 50


def _fail_many(service: Service, headers: dict[str, str]) -> list[str]:
    def one(_: int) -> str:
        failed = walk(service, headers, "Smartcar", "tesla-model-3", want_errors=True)
        assert failed["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
        return str(failed["vehicle_id"])

    with ThreadPoolExecutor(25) as pool:
        return list(pool.map(one, range(FAILED)))


def test_an_operator_redrives_an_outage_in_bulk(
    service: Service, browsing: Browsing, clean: Database
) -> None:
    # Given Smartcar answering 503 to every validation: 50 vehicles fail
    headers = operator_sets_up(service, "ops", ["Smartcar"], cli=cv_in_process)
    faults = f"{service.fakes}/smartcar/_fake/faults"
    httpx.post(faults, json={"path": VEHICLES, "status": 503, "times": 100_000})
    failed = _fail_many(service, headers)
    user, password = FLOWER_LOGIN
    page = browsing.new_page(http_credentials={"username": user, "password": password})

    # A Flower started after they failed has heard of none of them: its view still counts
    # them, from the database
    port = free_port()
    env = {**service.env, "CV_FLOWER_PORT": str(port)}
    with process("flower-2", procfile_argv("flower", env), env):
        fresh = f"http://127.0.0.1:{port}"
        wait_for(answers(f"{fresh}/api/workers", FLOWER_LOGIN), "the second flower")
        page.goto(f"{fresh}/tasks")
        page.locator("#cv-nav-vehicles").click()  # the console's link in Flower's bar
        page.wait_for_url(f"{fresh}/cv/vehicles")
        counts = page.locator("#cv-counts tbody tr", has_text="PROVIDER_UNAVAILABLE")
        expect(counts).to_have_count(1)
        expect(counts).to_contain_text("Smartcar")
        expect(counts.locator("td").nth(2)).to_have_text(str(FAILED))

    # What an operator must never meet, on the same console (one service for both)
    refuses_what_an_operator_must_never_meet(service)

    # The operator filters: failed, PROVIDER_UNAVAILABLE, Smartcar
    page.goto(f"{service.flower}/cv/vehicles")
    page.select_option("#cv-status", "failed")
    page.select_option("#cv-code", "PROVIDER_UNAVAILABLE")
    page.select_option("#cv-provider", "Smartcar")
    page.locator("#cv-apply").click()
    expect(page.locator("#cv-vehicles tbody tr")).to_have_count(FAILED)
    expect(page.locator("#cv-next")).to_have_count(0)  # one page of 50
    expect(page.locator("#cv-vehicles tbody")).to_contain_text("503")  # the last error

    # a dry run counts 50, and changes nothing
    page.locator("#cv-bulk-plan").click()
    expect(page.locator("#cv-plan-total")).to_contain_text(f"{FAILED} failed vehicles match")
    status = graphql(service.web, headers, GET_STATUS, id=failed[0])
    assert status["data"]["connectedVehicle"]["status"] == "failed"

    # without a reason the run is refused (the browser's own check set aside)
    page.locator("#cv-reason").evaluate("e => e.removeAttribute('required')")
    page.locator("#cv-run-button").click()
    expect(page.locator("#cv-error")).to_contain_text("needs a reason")

    # Smartcar is back; the run with a reason re-drives them, its page shows progress
    httpx.delete(faults)
    page.locator("#cv-reason").fill("Smartcar outage, fixed at 10:05")
    page.locator("#cv-run-button").click()
    page.wait_for_url(f"{service.flower}/cv/redrives/*")
    expect(page.locator("#cv-run-reason")).to_have_text("Smartcar outage, fixed at 10:05")
    expect(page.locator("#cv-run-state")).to_have_text("done", timeout=60_000)
    expect(page.locator("#cv-run-progress")).to_have_text(
        f"{FAILED} of {FAILED}: {FAILED} re-driven, 0 skipped, 0 refused"
    )
    expect(page.locator("#cv-run-items tbody tr.cv-item-redriven")).to_have_count(FAILED)

    # all 50 end authorized
    def all_authorized() -> bool:
        return all(
            graphql(service.web, headers, GET_STATUS, id=v)["data"]["connectedVehicle"]["status"]
            == "authorized"
            for v in failed
        )

    wait_for(all_authorized, "the 50 re-driven vehicles authorized", timeout=60)

    # one vehicle's page: its failed attempts with the 503, the success, the re-drive
    page.goto(f"{service.flower}/cv/vehicles/{failed[0]}")
    expect(page.locator("#cv-vehicle-status")).to_have_text("authorized")
    failures = page.locator("#cv-attempts tbody tr", has_text="503")
    expect(failures.first).to_contain_text("/v2.0/vehicles")
    expect(failures.first).to_contain_text("PROVIDER_UNAVAILABLE")
    expect(page.locator("#cv-attempts tbody tr.cv-attempt-succeeded")).to_have_count(1)
    operators = page.locator("#cv-operators tbody tr")
    expect(operators).to_contain_text("bulk_redrive")
    expect(operators).to_contain_text("Smartcar outage, fixed at 10:05")
    expect(operators).to_contain_text(f"{user} (flower)")
    expect(page.locator("#cv-changes tbody")).to_contain_text("connected_vehicle.authorized")
    # no token of it on its page
    row = vehicle_row(clean, failed[0])
    html = httpx.get(f"{service.flower}/cv/vehicles/{failed[0]}", auth=FLOWER_LOGIN).text
    assert row.access_token and row.access_token not in html
    assert row.refresh_token and row.refresh_token not in html
    # its attempts link to their tasks in Flower
    task_link = page.locator("#cv-attempts a[href*='/task/']").last
    task_link.click()
    page.wait_for_url(f"{service.flower}/task/*")
    expect(page.locator("#cv-vehicle-status")).to_contain_text("now authorized")
    expect(page.locator("#cv-redrive")).to_have_count(0)  # not failed: no Re-drive
    assert browsing.offsite == []


def refuses_what_an_operator_must_never_meet(service: Service) -> None:
    """No login, a cross-site POST, bad filters and cursors, a search that is SQL or HTML."""
    login = FLOWER_LOGIN
    console = f"{service.flower}/cv/vehicles"
    # not logged in: 401, as the rest of Flower
    for path in ("/cv/vehicles", "/cv/redrives", "/cv/vehicles/x"):
        assert httpx.get(f"{service.flower}{path}").status_code == 401, path
    # a cross-site POST: refused by Flower's check, nothing started
    form = {"run": "1", "reason": "x", "code": "PROVIDER_UNAVAILABLE"}
    for came_from in (
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Origin": "https://evil.example"},  # a browser that sends no fetch metadata
    ):
        forged = httpx.post(
            f"{service.flower}/cv/redrives", auth=login, data=form, headers=came_from
        )
        assert forged.status_code == 403, came_from
    assert httpx.get(f"{service.flower}/cv/redrives", auth=login).text.count("cv-item") == 0
    # bad filters: a clear message, nothing run
    unknown = httpx.get(console, params={"code": "NOPE"}, auth=login)
    assert unknown.status_code == 400
    assert "unknown failure code &#x27;NOPE&#x27;: one of" in unknown.text
    assert "PROVIDER_UNAVAILABLE" in unknown.text
    for bad in ({"since": "yesterday-ish"}, {"cursor": "not-a-cursor!"}, {"provider": "Ford"}):
        answer = httpx.get(console, params=bad, auth=login)
        assert answer.status_code == 400, bad
        assert 'id="cv-error"' in answer.text and 'id="cv-vehicles"' not in answer.text
    # a search is data: never SQL, never HTML
    for probe in ("'; DROP TABLE connected_vehicles; --", "<script>alert(1)</script>"):
        found = httpx.get(console, params={"q": probe}, auth=login)
        assert found.status_code == 200
        assert 'id="cv-none"' in found.text
        assert "<script>alert(1)</script>" not in found.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in found.text
    assert httpx.get(console, params={"status": "failed"}, auth=login).status_code == 200
