"""The service as `make run` runs it, over real processes on loopback: the demo's fakes,
web, worker and Flower, for the end-to-end and browser tests; and the steps of the README's
walk-through that those tests share (an operator sets up a client; a user connects a car).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from harness import (
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
from harness.tenant import CLIENT_PAGE
from providers.fakes.browser import consent
from tests.helpers.run import REDIS_BASE, REDIS_DB

__all__ = [
    "FLOWER_LOGIN",
    "GET_STATUS",
    "JOURNEYS",
    "Service",
    "cv_in_process",
    "graphql",
    "operator_sets_up",
    "started",
    "walk",
    "watch_consent",
]

FLOWER_LOGIN = ("ops", "e2e-password")


@dataclass
class Service:
    web: str
    fakes: str
    flower: str
    env: dict[str, str]


@contextmanager
def started() -> Iterator[Service]:
    """Fakes, web, worker and Flower as the Procfile runs them, on free ports, the
    worker on the run's next Redis db; that db emptied after."""
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


def cv_in_process(*args: str, env: dict[str, str]) -> str:
    """The operators' tool run in this process (click's runner; the same commands, on the
    same database), for tests that set up a client on the way to what they test: an
    interpreter started for each command is two seconds. The README's walk-through
    (tests/e2e) runs the tool itself."""
    from click.testing import CliRunner

    from api.cli import main

    extra = {k: v for k, v in env.items() if k == "CV_OAUTH_CLIENT_SECRET"}
    result = CliRunner().invoke(main, list(args), env=extra, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def operator_sets_up(
    service: Service,
    client_id: str,
    providers: list[str],
    user: str = "user-1",
    *,
    cli: Callable[..., str] = cli,
) -> dict[str, str]:
    """Step 1, with the operators' tool: a client, its app at each provider (on the demo's
    fakes), and a user token; returns the user's headers. `cli`: how the tool runs (its
    own process by default; cv_in_process)."""
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


async def watch_consent(web: str, headers: dict[str, str], created: dict) -> list[str]:
    """A WebSocket client (gql, graphql-transport-ws) subscribes to the vehicle just
    created; once subscribed, its user consents and comes back to the callback. The
    statuses seen, up to the first that is not `pending`."""
    import asyncio

    from gql import Client, GraphQLRequest
    from gql.transport.websockets import WebsocketsTransport

    transport = WebsocketsTransport(
        url=web.replace("http://", "ws://") + "/graphql",
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
