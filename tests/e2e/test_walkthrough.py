"""The README's walk-through, over real processes and HTTP only, for every provider: the
operators' tool sets up a client, the web and worker processes and the demo's fakes run
as they do in `make run`, Flower shows the jobs. (The service: tests/e2e/stack.py.)"""

from __future__ import annotations

import httpx
import pytest

from harness import cli, wait_for
from tests.helpers.stack import (
    FLOWER_LOGIN,
    GET_STATUS,
    JOURNEYS,
    Service,
    graphql,
    operator_sets_up,
    walk,
    watch_consent,
)

pytestmark = pytest.mark.e2e


def test_walkthrough(service: Service) -> None:
    env = service.env
    # 1. an operator sets up a client, its apps at every provider, and a user token
    headers = operator_sets_up(service, "e2e", [provider for provider, _, _ in JOURNEYS])

    authorized = {}
    for provider, car, vin in JOURNEYS:
        got = walk(service, headers, provider, car)
        assert (got["status"], got["vin"], got["scope"]) == (
            "authorized",
            vin,
            ["location", "charge_state"],
        ), provider
        authorized[got["id"]] = provider

    listed = graphql(service.web, headers, "{ connectedVehicleList { id status label } }")
    assert {v["id"]: v["status"] for v in listed["data"]["connectedVehicleList"]} == {
        i: "authorized" for i in authorized
    }
    in_the_tool = cli("vehicles", "list", "--status", "authorized", env=env)
    assert all(i in in_the_tool for i in authorized)

    # Flower, behind its login, shows the jobs that ran
    assert httpx.get(f"{service.flower}/api/tasks").status_code == 401
    # so are the pages Flower itself leaves open (workers.flower.guard)
    for open_in_flower in ("/metrics", "/healthcheck"):
        assert httpx.get(f"{service.flower}{open_in_flower}").status_code == 401
        wrong = httpx.get(f"{service.flower}{open_in_flower}", auth=("ops", "wrong"))
        assert wrong.status_code == 401
        shown = httpx.get(f"{service.flower}{open_in_flower}", auth=FLOWER_LOGIN)
        assert shown.status_code == 200, open_in_flower
    assert "flower_events_total" in httpx.get(f"{service.flower}/metrics", auth=FLOWER_LOGIN).text

    def jobs_shown() -> bool:
        tasks = httpx.get(f"{service.flower}/api/tasks", auth=FLOWER_LOGIN, timeout=5).json()
        done = {t["name"] for t in tasks.values() if t["state"] == "SUCCESS"}
        return {"cv.validate_authorization", "cv.start_authorization"} <= done

    wait_for(jobs_shown, "the jobs in Flower", timeout=20)


def test_operators_redrive_from_flower(service: Service) -> None:
    """A vehicle fails PROVIDER_UNAVAILABLE: its step is a FAILURE task in Flower, whose
    page has a Re-drive button; once the provider is back, the button re-drives it and
    the vehicle ends authorized. (The browser clicks it in tests/browser.)"""
    headers = operator_sets_up(service, "ops", ["Smartcar"])
    faults = f"{service.fakes}/smartcar/_fake/faults"
    httpx.post(faults, json={"path": "/v2.0/vehicles", "status": 503, "times": 1000})

    vehicle_id = walk(service, headers, "Smartcar", "tesla-model-3", want_errors=True)["vehicle_id"]
    # the mutation's bounded wait may end before the last retry: the vehicle then fails
    failure = "query($id: ID!) { connectedVehicle(id: $id) { status failure { code } } }"

    def failed() -> bool:
        got = graphql(service.web, headers, failure, id=vehicle_id)["data"]["connectedVehicle"]
        return bool(got["status"] == "failed")

    wait_for(failed, "the vehicle failed", timeout=90)
    got = graphql(service.web, headers, failure, id=vehicle_id)["data"]["connectedVehicle"]
    assert got["failure"]["code"] == "PROVIDER_UNAVAILABLE"

    found: list[str] = []

    def failure_task() -> bool:
        tasks = httpx.get(
            f"{service.flower}/api/tasks", params={"state": "FAILURE"}, auth=FLOWER_LOGIN
        ).json()
        found.extend(u for u, t in tasks.items() if vehicle_id in (t["args"] or ""))
        return bool(found)

    wait_for(failure_task, "the failed step in Flower", timeout=20)
    task_id = found[0]
    task = httpx.get(f"{service.flower}/api/task/info/{task_id}", auth=FLOWER_LOGIN).json()
    assert task["name"] == "cv.validate_authorization"
    assert "PROVIDER_UNAVAILABLE" in task["exception"]
    page = httpx.get(f"{service.flower}/task/{task_id}", auth=FLOWER_LOGIN)
    assert 'id="task-redrive"' in page.text

    redrive = f"{service.flower}/cv/redrive/{task_id}"
    assert httpx.post(redrive).status_code == 401  # behind the login

    httpx.delete(faults)
    done = httpx.post(redrive, auth=FLOWER_LOGIN, timeout=10)
    assert done.status_code == 200, done.text
    assert "Re-driven" in done.text and "now pending" in done.text

    def authorized() -> bool:
        got = graphql(service.web, headers, GET_STATUS, id=vehicle_id)
        return bool(got["data"]["connectedVehicle"]["status"] == "authorized")

    wait_for(authorized, "the re-driven vehicle", timeout=30)
    again = httpx.post(redrive, auth=FLOWER_LOGIN, timeout=10)  # no longer failed
    assert again.status_code == 409 and "Not re-driven" in again.text

    # a task that did not fail (the re-driven step, which succeeded): nothing to re-drive
    succeeded: list[str] = []

    def one_succeeded() -> bool:
        tasks = httpx.get(
            f"{service.flower}/api/tasks", params={"state": "SUCCESS"}, auth=FLOWER_LOGIN
        ).json()
        succeeded.extend(tasks)
        return bool(succeeded)

    wait_for(one_succeeded, "a succeeded step in Flower", timeout=20)
    other = httpx.post(f"{service.flower}/cv/redrive/{succeeded[0]}", auth=FLOWER_LOGIN)
    assert other.status_code == 400 and "Nothing to re-drive" in other.text


def test_a_subscription_sees_the_worker_authorize(service: Service) -> None:
    """A WebSocket client (gql, graphql-transport-ws) subscribed right after creation sees
    pending, then authorized: the change made by the worker process."""
    import asyncio

    from gql import Client, GraphQLRequest
    from gql.transport.websockets import WebsocketsTransport

    env = service.env
    headers = operator_sets_up(service, "live", ["Smartcar"])
    created = graphql(
        service.web,
        headers,
        """mutation($input: CreateConnectedVehicleInput!) {
             createConnectedVehicle(input: $input) { id authorization_url } }""",
        input={"vehicle_id": "tesla-model-3", "provider": "Smartcar"},
    )["data"]["createConnectedVehicle"]

    async def peek(as_user: str) -> str:
        """Another user of the client subscribes to this vehicle: not found."""
        from gql.transport.exceptions import TransportQueryError

        other = cli("token", "mint", "live", as_user, env=env).strip()
        transport = WebsocketsTransport(
            url=service.web.replace("http://", "ws://") + "/graphql",
            init_payload={"x-client-id": "live", "authorization": f"Bearer {other}"},
            subprotocols=["graphql-transport-ws"],
        )
        request = GraphQLRequest(
            "subscription($id: ID!) { connectedVehicle(id: $id) { status } }",
            variable_values={"id": created["id"]},
        )
        async with Client(transport=transport) as session:
            try:
                async for _ in session.subscribe(request):
                    return "seen"
            except TransportQueryError as exc:
                return str(exc.errors[0]["extensions"]["code"]) if exc.errors else str(exc)
        return "nothing"

    assert asyncio.run(asyncio.wait_for(peek("someone-else"), timeout=30)) == (
        "CONNECTED_VEHICLE_NOT_FOUND"
    )
    seen = asyncio.run(asyncio.wait_for(watch_consent(service.web, headers, created), 30))
    assert seen == ["pending", "authorized"]
