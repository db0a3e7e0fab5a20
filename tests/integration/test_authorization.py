"""The authorization workflow on PostgreSQL and Redis with a real Celery worker and the
fake Smartcar over loopback, driven through the API and the OAuth callback."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from sqlalchemy import select
from starlette.testclient import TestClient

from harness.tenant import Tenant
from providers import RetryPolicy
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from settings import get_settings
from store.models import OutboxEvent
from tests.helpers.api import AUTHORIZE, GET, callback_path, create_vehicle, error_code, gql
from tests.helpers.providers_table import car
from tests.helpers.store import attempts_of, events_of, vehicle_row
from tests.helpers.wait import wait_until
from workflows.events import ALL_EVENTS

pytestmark = pytest.mark.usefixtures("worker")


def authorize(api: TestClient, tenant: Tenant, vehicle_id: str, code: str | None = None):
    options = {"code": code} if code else None
    return gql(api, AUTHORIZE, {"input": {"id": vehicle_id, "options": options}}, tenant.headers())


def code_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def test_create_consent_callback_authorized(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, redis_url: str
) -> None:
    events = redis.Redis.from_url(redis_url).pubsub()
    events.subscribe(ALL_EVENTS)

    vehicle = create_vehicle(api, tenant.headers())
    assert vehicle["status"] == "pending"
    assert vehicle["scope"] == ["location", "charge_state", "odometer"]
    back = consent(vehicle["authorization_url"])
    callback = api.get(callback_path(back))
    body = authorize(api, tenant, vehicle["id"])

    assert callback.status_code == 303
    assert f"connected_vehicle_id={vehicle['id']}&status=pending" in callback.headers["location"]
    authorized = body["data"]["authorizeConnectedVehicle"]
    assert authorized["status"] == "authorized"
    assert authorized["vin"] == "5YJ3E1EA7NF000001"
    assert authorized["authorized_at"]
    assert events_of(tenant.db, vehicle["id"]) == [
        "connected_vehicle.created",
        "connected_vehicle.authorized",
    ]
    row = vehicle_row(tenant.db, vehicle["id"])
    assert row.access_token and row.auth_code is None

    # the relay publishes both events, each with its outbox id
    with tenant.db.session() as session:
        ids = list(
            session.execute(
                select(OutboxEvent.id).where(OutboxEvent.vehicle_id == vehicle["id"])
            ).scalars()
        )
    seen: dict[str, dict[str, Any]] = {}

    def published() -> bool:
        message = events.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            event = json.loads(message["data"])
            seen[event["id"]] = event
        return set(ids) <= set(seen)

    wait_until(published)
    assert [seen[i]["type"] for i in ids] == [
        "connected_vehicle.created",
        "connected_vehicle.authorized",
    ]
    assert seen[ids[1]]["data"]["status"] == "authorized"
    assert "access_token" not in json.dumps(seen[ids[1]])
    events.close()

    listed = gql(
        api,
        "{ connectedVehicleList(filter: {status: authorized}) { id vin } }",
        headers=tenant.headers(),
    )
    assert listed["data"]["connectedVehicleList"] == [
        {"id": vehicle["id"], "vin": "5YJ3E1EA7NF000001"}
    ]
    again = authorize(api, tenant, vehicle["id"])  # calling again is harmless
    assert again["data"]["authorizeConnectedVehicle"]["status"] == "authorized"
    assert smartcar.fake.exchange_attempts == 1


def test_deny(api: TestClient, tenant: Tenant, smartcar: FakeServer) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"], decision="deny")))

    body = authorize(api, tenant, vehicle["id"])

    assert error_code(body) == "AUTHORIZATION_DENIED"
    got = gql(api, GET, {"id": vehicle["id"]}, tenant.headers())["data"]["connectedVehicle"]
    assert got["status"] == "failed"
    assert got["failure"] == {"code": "AUTHORIZATION_DENIED", "retryable": False}
    assert smartcar.fake.exchange_attempts == 0


def test_a_rejected_code(api: TestClient, tenant: Tenant, smartcar: FakeServer) -> None:
    vehicle = create_vehicle(api, tenant.headers())

    body = authorize(api, tenant, vehicle["id"], code="not-a-code-smartcar-issued")

    assert error_code(body) == "AUTH_CODE_INVALID"
    assert body["errors"][0]["message"] == "The provided auth code is not valid"
    assert vehicle_row(tenant.db, vehicle["id"]).status == "failed"
    assert events_of(tenant.db, vehicle["id"])[-1] == "connected_vehicle.failed"


@pytest.mark.parametrize(
    ("vehicles", "withheld", "catalogue_id", "code"),
    [
        pytest.param(
            [car("VIN0000000000001"), car("VIN0000000000002")],
            [],
            "tesla-model-3",
            "CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED",
            id="two vehicles",
        ),
        pytest.param([car()], [], "kia-ev6", "CONNECT_PROVIDER_NOT_SUPPORTED", id="wrong make"),
        pytest.param(
            [car()], ["read_location"], "tesla-model-3", "SCOPE_NOT_GRANTED", id="missing scope"
        ),
    ],
)
def test_validation_failures(
    api: TestClient,
    tenant: Tenant,
    smartcar: FakeServer,
    vehicles: list,
    withheld: list,
    catalogue_id: str,
    code: str,
) -> None:
    smartcar.account("carol", *vehicles, withheld=withheld)
    vehicle = create_vehicle(api, tenant.headers(), vehicle_id=catalogue_id)
    api.get(callback_path(consent(vehicle["authorization_url"], account="carol")))

    body = authorize(api, tenant, vehicle["id"])

    assert error_code(body) == code
    row = vehicle_row(tenant.db, vehicle["id"])
    assert (row.status, row.failure_code, row.failure_retryable) == ("failed", code, False)


def test_the_clients_own_page_passes_the_code(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    code = code_of(consent(vehicle["authorization_url"]))  # our callback never sees it

    body = authorize(api, tenant, vehicle["id"], code=code)

    assert body["data"]["authorizeConnectedVehicle"]["status"] == "authorized"
    assert smartcar.fake.exchanges[code] == 1


def test_the_same_callback_twice_is_one_exchange_one_transition_one_event(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"])

    first = api.get(callback_path(back))
    second = api.get(callback_path(back))
    wait_until(lambda: vehicle_row(tenant.db, vehicle["id"]).status == "authorized")

    assert (first.status_code, second.status_code) == (303, 400)
    assert smartcar.fake.exchanges[code_of(back)] == 1
    assert smartcar.fake.exchange_attempts == 1
    assert events_of(tenant.db, vehicle["id"]) == [
        "connected_vehicle.created",
        "connected_vehicle.authorized",
    ]


def test_concurrent_authorize_calls_share_one_exchange(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    vehicle = create_vehicle(api, tenant.headers())
    code = code_of(consent(vehicle["authorization_url"]))

    with ThreadPoolExecutor(max_workers=5) as pool:
        bodies = list(
            pool.map(lambda _: authorize(api, tenant, vehicle["id"], code=code), range(5))
        )

    assert [b["data"]["authorizeConnectedVehicle"]["status"] for b in bodies] == ["authorized"] * 5
    assert smartcar.fake.exchanges[code] == 1
    assert smartcar.fake.exchange_attempts == 1
    assert events_of(tenant.db, vehicle["id"]).count("connected_vehicle.authorized") == 1
    # one attempt, recorded once, whichever runs raced to it
    tried = attempts_of(tenant.db, vehicle["id"])
    assert [(a.step, a.attempt, a.outcome) for a in tried] == [("validate", 1, "succeeded")]


def test_transient_errors_are_retried_until_authorized(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    smartcar.fault("/oauth/token", 503)
    smartcar.fault("/v2.0/vehicles", 429, retry_after=0)
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))

    body = authorize(api, tenant, vehicle["id"])

    assert body["data"]["authorizeConnectedVehicle"]["status"] == "authorized"
    assert smartcar.fake.exchange_attempts == 1  # the 503 never reached the code store
    assert smartcar.fake.requests["/oauth/token"] == 2
    assert smartcar.fake.requests["/v2.0/vehicles"] == 2
    # each attempt recorded, the failed ones with the provider's answer and its endpoint
    tried = attempts_of(tenant.db, vehicle["id"])
    assert [(a.attempt, a.outcome, a.http_status, a.endpoint) for a in tried[:2]] == [
        (1, "retrying", 503, "/oauth/token"),
        (2, "retrying", 429, "/v2.0/vehicles"),
    ]
    # the last call of the success (the car's reads run at once: either comes last)
    assert (tried[2].attempt, tried[2].outcome, tried[2].http_status) == (3, "succeeded", 200)
    assert str(tried[2].endpoint).startswith("/v2.0/vehicles/{id}") and len(tried) == 3
    assert {a.step for a in tried} == {"validate"}
    assert {a.error_code for a in tried} == {"PROVIDER_UNAVAILABLE", None}
    assert all(a.task_id and a.ended_at >= a.started_at for a in tried)


def test_a_provider_down_after_every_retry_fails_retryable(
    api: TestClient, tenant: Tenant, smartcar: FakeServer
) -> None:
    smartcar.fault("/v2.0/vehicles", 503, times=100)
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))

    body = authorize(api, tenant, vehicle["id"])

    assert error_code(body) == "PROVIDER_UNAVAILABLE"
    assert body["errors"][0]["extensions"]["exception"]["status"] == 503
    row = vehicle_row(tenant.db, vehicle["id"])
    assert (row.status, row.failure_retryable) == ("failed", True)
    # exactly CV_RETRY_MAX_ATTEMPTS attempts of the step, plus the first one's inline budget
    policy = RetryPolicy.of(get_settings())
    assert policy.max_attempts == 3
    assert smartcar.fake.requests["/v2.0/vehicles"] == 3 + policy.inline_retries
    assert row.access_token  # the code was spent once; its tokens are kept
    # the history tells each attempt's 503, and none of it is a token
    tried = attempts_of(tenant.db, vehicle["id"])
    assert [(a.attempt, a.outcome) for a in tried] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "exhausted"),
    ]
    for attempt in tried:
        assert (attempt.http_status, attempt.endpoint) == (503, "/v2.0/vehicles")
        assert attempt.error_code == "PROVIDER_UNAVAILABLE" and "503" in (attempt.error or "")
        seen = " ".join(str(getattr(attempt, c.key)) for c in attempt.__table__.columns)
        assert row.access_token not in seen and (row.refresh_token or "-") not in seen


def test_the_step_gets_exactly_the_configured_attempts(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More attempts than Celery's own default of 3 retries would allow
    settings = get_settings()
    monkeypatch.setattr(settings, "retry_max_attempts", 6)
    policy = RetryPolicy.of(settings)
    smartcar.fault("/v2.0/vehicles", 503, times=1000)
    vehicle = create_vehicle(api, tenant.headers())
    api.get(callback_path(consent(vehicle["authorization_url"])))

    body = authorize(api, tenant, vehicle["id"])

    assert error_code(body) == "PROVIDER_UNAVAILABLE"
    row = vehicle_row(tenant.db, vehicle["id"])
    assert row.attempts == 6
    assert smartcar.fake.requests["/v2.0/vehicles"] == 6 + policy.inline_retries
