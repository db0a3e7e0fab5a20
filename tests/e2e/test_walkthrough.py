"""The README's walk-through, over real processes and HTTP only: the operators' tool sets
up a client, the web and worker processes and the fake Smartcar run as they do in
production, Flower shows the jobs."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from store.db import Database
from tests.conftest import REDIS_BASE, REDIS_DB
from tests.processes import BIN, answers, cli, free_port, process, wait_for

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
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        # the next Redis db: the in-process test worker must not take these tasks
        "CV_BROKER_URL": f"{REDIS_BASE}/{REDIS_DB + 1}",
        "CV_PUBLIC_URL": web,
        "CV_FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN),
        "CV_FLOWER_PORT": str(flower_port),
    }
    py = str(BIN / "python")
    with (
        process(
            "fakes",
            [
                py,
                "-m",
                "providers.fakes",
                "--port",
                str(fakes_port),
                "--app",
                f"app-e2e:app-e2e-secret:{web}/oauth/callback",
            ],
            env,
        ),
        process(
            "web",
            [str(BIN / "uvicorn"), "--factory", "api.app:create_app", "--port", str(web_port)],
            env,
        ),
        process(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "workers.app",
                "worker",
                "--concurrency=2",
                "--loglevel=INFO",
                "-n",
                f"e2e-{web_port}@%h",
            ],
            env,
        ),
        process("flower", [py, "-m", "workers.flower"], env),
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


def test_walkthrough(service: Service) -> None:
    env = service.env
    # 1. an operator sets up a client, its Smartcar app, and a user token
    created = cli("client", "create", "--name", "E2E", "--id", "e2e", env=env)
    assert "signing secret:" in created
    cli(
        "client",
        "set-provider",
        "e2e",
        "Smartcar",
        "--oauth-client-id",
        "app-e2e",
        "--base-url",
        f"{service.fakes}/smartcar",
        env={**env, "CV_OAUTH_CLIENT_SECRET": "app-e2e-secret"},
    )
    token = cli("token", "mint", "e2e", "user-1", env=env).strip()
    headers = {"x-client-id": "e2e", "authorization": f"Bearer {token}"}

    # 2. createConnectedVehicle: pending, with an authorization URL
    body = graphql(
        service.web,
        headers,
        """mutation($input: CreateConnectedVehicleInput!) {
             createConnectedVehicle(input: $input) { id status authorization_url } }""",
        input={
            "vehicle_id": "tesla-model-y",
            "provider": "Smartcar",
            "label": "Family car",
            "options": {
                "redirect_uri": "https://client.example/done",
                "scope": ["location", "charge_state"],
            },
        },
    )
    vehicle = body["data"]["createConnectedVehicle"]
    assert vehicle["status"] == "pending"

    # 3. the user consents on the (fake) Smartcar page; Allow leads to our callback, which
    #    sends the user on to the client's page
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        page = browser.get(vehicle["authorization_url"])
        assert page.status_code == 200 and "Allow" in page.text and "Deny" in page.text
        fields = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
        )
        fields = {k: html.unescape(v) for k, v in fields.items()}
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        allowed = browser.post(
            httpx.URL(vehicle["authorization_url"]).join(action.group(1)),
            data={**fields, "account": "demo", "decision": "allow"},
        )
        assert allowed.headers["location"].startswith(f"{service.web}/oauth/callback?")
        back = browser.get(allowed.headers["location"])
    assert back.status_code == 303
    assert back.headers["location"] == (
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
    assert body["data"]["authorizeConnectedVehicle"] == {
        "id": vehicle["id"],
        "status": "authorized",
        "vin": "5YJ3E1EA7NF000001",
        "scope": ["location", "charge_state"],
    }
    listed = graphql(service.web, headers, "{ connectedVehicleList { id status label } }")
    assert listed["data"]["connectedVehicleList"] == [
        {"id": vehicle["id"], "status": "authorized", "label": "Family car"}
    ]
    assert vehicle["id"] in cli("vehicles", "list", "--status", "authorized", env=env)

    # Flower, behind its login, shows the jobs that ran
    assert httpx.get(f"{service.flower}/api/tasks").status_code == 401

    def validation_shown() -> bool:
        tasks = httpx.get(f"{service.flower}/api/tasks", auth=FLOWER_LOGIN, timeout=5).json()
        return any(
            t["name"] == "cv.validate_authorization" and t["state"] == "SUCCESS"
            for t in tasks.values()
        )

    wait_for(validation_shown, "the validation job in Flower", timeout=20)
