"""The README's walk-through, over real processes and HTTP only, for every provider: the
operators' tool sets up a client, the web and worker processes and the demo's fakes run
as they do in `make run`, Flower shows the jobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.harness import (
    answers,
    cli,
    free_port,
    path_env,
    process,
    procfile_argv,
    wait_for,
    web_argv,
    worker_argv,
)
from bench.harness.tenant import CLIENT_PAGE
from providers.fakes.browser import consent
from store.db import Database
from tests.conftest import REDIS_BASE, REDIS_DB

pytestmark = pytest.mark.e2e

FLOWER_LOGIN = ("ops", "e2e-password")


@dataclass
class Service:
    web: str
    fakes: str
    flower: str
    env: dict[str, str]


@pytest.fixture
def service(clean: Database, tmp_path: Path) -> Iterator[Service]:
    web_port, fakes_port, flower_port = free_port(), free_port(), free_port()
    web = f"http://127.0.0.1:{web_port}"
    env = {
        **path_env(),
        # the next Redis db: the in-process test worker must not take these tasks
        "CV_BROKER_URL": f"{REDIS_BASE}/{REDIS_DB + 1}",
        "CV_PUBLIC_URL": web,
        "CV_FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN),
        "CV_FLOWER_PORT": str(flower_port),
    }
    # web, worker and flower as the Procfile runs them (`make run`)
    with (
        process(
            "fakes",
            [
                "python",
                "-m",
                "providers.fakes",
                "--port",
                str(fakes_port),
                "--app",
                f"app-e2e:app-e2e-secret:{web}/oauth/callback",
            ],
            env,
        ),
        process("web", web_argv(env, port=web_port), env),
        process("worker", worker_argv(env, name=f"e2e-{web_port}@%h"), env),
        process("flower", procfile_argv("flower", env), env),
    ):
        fakes = f"http://127.0.0.1:{fakes_port}"
        flower = f"http://127.0.0.1:{flower_port}"
        wait_for(answers(f"{web}/readyz"), "web")
        wait_for(answers(f"{fakes}/smartcar/_fake/stats"), "fake Smartcar")
        wait_for(answers(f"{flower}/api/workers", FLOWER_LOGIN), "flower")
        yield Service(web, fakes, flower, env)
    import redis

    redis.Redis.from_url(env["CV_BROKER_URL"]).flushdb()


def graphql(web: str, headers: dict[str, str], query: str, **variables: object) -> dict:
    response = httpx.post(
        f"{web}/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200
    return dict(response.json())


# The demo's accounts: "demo" holds a Tesla Model 3 at every fake but High Mobility's,
# where it holds a BMW i4.
JOURNEYS = [
    ("Smartcar", "tesla-model-3", "5YJ3E1EA7NF000001"),
    ("Enode", "tesla-model-3", "5YJ3E1EA7NF000001"),
    ("Tesla", "tesla-model-y", "5YJ3E1EA7NF000001"),
    ("HighMobility", "bmw-i4", "WBY71AW010FP00001"),
]


GET_STATUS = "query($id: ID!) { connectedVehicle(id: $id) { status } }"


def walk(
    service: Service,
    headers: dict[str, str],
    provider: str,
    car: str,
    *,
    want_errors: bool = False,
) -> dict:
    """Steps 2 to 5 for one provider; returns the authorized vehicle (or, with
    `want_errors`, the whole response and the vehicle's id)."""
    # 2. createConnectedVehicle: pending, with an authorization URL
    body = graphql(
        service.web,
        headers,
        """mutation($input: CreateConnectedVehicleInput!) {
             createConnectedVehicle(input: $input) { id status authorization_url } }""",
        input={
            "vehicle_id": car,
            "provider": provider,
            "label": f"{provider} car",
            "options": {
                "redirect_uri": CLIENT_PAGE,
                "scope": ["location", "charge_state"],
            },
        },
    )
    vehicle = body["data"]["createConnectedVehicle"]
    assert vehicle["status"] == "pending" and vehicle["authorization_url"], body

    # 3. the user consents on the provider's (fake) page; Allow leads to our callback,
    #    which sends the user on to the client's page
    back = consent(vehicle["authorization_url"], account="demo")
    assert back.startswith(f"{service.web}/oauth/callback?")
    returned = httpx.get(back, follow_redirects=False)
    assert returned.status_code == 303
    assert returned.headers["location"] == (
        f"https://client.example/done?connected_vehicle_id={vehicle['id']}&status=pending"
    )

    # 4-5. the worker validates; authorizeConnectedVehicle answers with the outcome
    body = graphql(
        service.web,
        headers,
        """mutation($input: AuthorizeConnectedVehicleInput!) {
             authorizeConnectedVehicle(input: $input) { id status vin scope } }""",
        input={"id": vehicle["id"]},
    )
    if want_errors:
        return {**body, "vehicle_id": vehicle["id"]}
    return dict(body["data"]["authorizeConnectedVehicle"])


def operator_sets_up(
    service: Service, client_id: str, providers: list[str], user: str = "user-1"
) -> dict[str, str]:
    """Step 1, with the operators' tool: a client, its app at each provider (on the demo's
    fakes), and a user token; returns the user's headers."""
    env = service.env
    created = cli("client", "create", "--name", client_id, "--id", client_id, env=env)
    assert "signing secret:" in created
    for provider in providers:
        cli(
            "client",
            "set-provider",
            client_id,
            provider,
            "--oauth-client-id",
            "app-e2e",
            "--base-url",
            f"{service.fakes}/{provider.lower()}",
            env={**env, "CV_OAUTH_CLIENT_SECRET": "app-e2e-secret"},
        )
    registered = cli("client", "add-redirect-uri", client_id, CLIENT_PAGE, env=env)
    assert CLIENT_PAGE in registered
    token = cli("token", "mint", client_id, user, env=env).strip()
    return {"x-client-id": client_id, "authorization": f"Bearer {token}"}


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

    failed = walk(service, headers, "Smartcar", "tesla-model-3", want_errors=True)
    assert failed["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    vehicle_id = failed["vehicle_id"]

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
    succeeded = httpx.get(
        f"{service.flower}/api/tasks", params={"state": "SUCCESS"}, auth=FLOWER_LOGIN
    ).json()
    other = httpx.post(f"{service.flower}/cv/redrive/{next(iter(succeeded))}", auth=FLOWER_LOGIN)
    assert other.status_code == 400 and "Nothing to re-drive" in other.text

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

    async def watch() -> list[str]:
        transport = WebsocketsTransport(
            url=service.web.replace("http://", "ws://") + "/graphql",
            init_payload=headers,  # a browser cannot set headers on a WebSocket
            subprotocols=["graphql-transport-ws"],
        )
        seen: list[str] = []
        request = GraphQLRequest(
            "subscription($id: ID!) { connectedVehicle(id: $id) { id status vin } }",
            variable_values={"id": created["id"]},
        )
        async with Client(transport=transport) as session:
            async for result in session.subscribe(request):
                seen.append(result["connectedVehicle"]["status"])
                if len(seen) == 1:  # subscribed: now the user consents
                    back = await asyncio.to_thread(consent, created["authorization_url"])
                    await asyncio.to_thread(httpx.get, back)
                if seen[-1] != "pending":
                    return seen
        return seen

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
    seen = asyncio.run(asyncio.wait_for(watch(), timeout=30))
    assert seen == ["pending", "authorized"]
