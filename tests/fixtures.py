"""Fixtures and helpers that drive the service the way its users do."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Connection, func, select, text
from starlette.testclient import TestClient

# The tenant, the fakes' servers and the user's consent live with the harness the bench
# shares; re-exported here for the tests.
from harness.tenant import APP_ID as APP_ID
from harness.tenant import APP_SECRET as APP_SECRET
from harness.tenant import CLIENT_PAGE as CLIENT_PAGE  # registered by make_tenant
from harness.tenant import Tenant as Tenant
from harness.tenant import make_tenant as make_tenant
from providers.fakes import FAKES
from providers.fakes.browser import consent as consent
from providers.fakes.serve import FakeServer as FakeServer
from providers.fakes.serve import serve_in_thread
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, OutboxEvent
from workflows.clients import create_client

T = TypeVar("T")


@pytest.fixture(scope="session")
def _fake_servers() -> Iterator[dict[str, FakeServer]]:
    """Every provider's fake, each served over HTTP on loopback for the whole run."""
    with ExitStack() as stack:
        servers = {}
        for name, cls in FAKES.items():
            fake = cls()
            servers[name] = FakeServer(stack.enter_context(serve_in_thread(fake.app())), fake)
        yield servers


@pytest.fixture
def fakes(_fake_servers: dict[str, FakeServer], settings: Settings) -> dict[str, FakeServer]:
    """Every fake, fresh, with the tenant's app registered."""
    for server in _fake_servers.values():
        server.fake.reset()
        server.fake.apps[APP_ID] = {
            "client_secret": APP_SECRET,
            "redirect_uris": [settings.callback_url],
        }
    return _fake_servers


@pytest.fixture
def smartcar(fakes: dict[str, FakeServer]) -> FakeServer:
    return fakes["Smartcar"]


@pytest.fixture(scope="session")
def worker(db: Database, redis_url: str) -> Iterator[None]:
    """A real Celery worker (threads pool) consuming this run's Redis db."""
    from celery.contrib.testing.worker import start_worker

    from workers.app import app

    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        yield
    from workers import heartbeat, runtime

    heartbeat.stop()  # (the testing worker sends no worker_shutdown) no beat after this
    runtime.database().engine.dispose()
    runtime.events_redis().close()


@pytest.fixture(scope="module")
def beat(worker: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real `celery beat` (a child process) sending the periodic tasks to this run's
    broker, the sweep every half second: token refreshes come due as they would in
    production. Per module: it runs only beside the tests that use it."""
    import os

    from harness.procs import BIN, path_env, process

    schedule = tmp_path_factory.mktemp("beat") / "schedule"
    env = path_env({**os.environ, "CV_SWEEP_INTERVAL_SECONDS": "0.5"})
    argv = [str(BIN / "celery"), "-A", "workers.app", "beat", "-s", str(schedule)]
    with process("beat", [*argv, "--loglevel", "WARNING"], env, show=False):
        yield


@pytest.fixture(scope="session")
def _api_app(db: Database, settings: Settings):
    from api.app import create_app

    app = create_app(settings)
    yield app
    app.state.db.engine.dispose()


@pytest.fixture
def api(_api_app) -> Iterator[TestClient]:
    with TestClient(_api_app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def tenant(clean: Database, fakes: dict[str, FakeServer]) -> Tenant:
    return make_tenant(clean, fakes)


# -- GraphQL -------------------------------------------------------------------------------------

CREATE = """
mutation($input: CreateConnectedVehicleInput!) {
  createConnectedVehicle(input: $input) {
    id vehicle_id status authorization_url provider scope label vin
    failure { code message retryable } created_at updated_at authorized_at
  }
}"""

AUTHORIZE = """
mutation($input: AuthorizeConnectedVehicleInput!) {
  authorizeConnectedVehicle(input: $input) {
    id status vin failure { code message retryable } authorized_at
  }
}"""

GET = """query($id: ID!) { connectedVehicle(id: $id) {
  id status vin label failure { code retryable } } }"""


def gql(
    client: TestClient | httpx.Client,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(body: dict[str, Any]) -> str:
    """The code of the only error, after checking the error's shape (SPEC §3)."""
    assert body.get("errors"), body
    assert len(body["errors"]) == 1, body
    ext = body["errors"][0]["extensions"]
    assert ext["code"] == ext["exception"]["code"]
    assert isinstance(ext["exception"]["status"], int)
    return str(ext["code"])


def create_vehicle(
    client: TestClient | httpx.Client,
    headers: dict[str, str],
    vehicle_id: str = "tesla-model-3",
    **options: Any,
) -> dict[str, Any]:
    body = gql(
        client,
        CREATE,
        {
            "input": {
                "vehicle_id": vehicle_id,
                "provider": "Smartcar",
                "label": "My car",
                "options": {"redirect_uri": CLIENT_PAGE, **options},
            }
        },
        headers,
    )
    assert "errors" not in body, body
    vehicle: dict[str, Any] = body["data"]["createConnectedVehicle"]
    return vehicle


# -- reading the database -----------------------------------------------------------------------


def add_vehicle(db: Database, **fields: Any) -> str:
    """A connected vehicle of a new client, written straight to the store: a Tesla Model 3
    at Smartcar, `pending`, unless `fields` say otherwise."""
    with db.session() as session:
        client_id = fields.pop("client_id", None) or create_client(session, "Acme").id
        row = ConnectedVehicle(
            **{
                "client_id": client_id,
                "user_id": "u1",
                "vehicle_id": "tesla-model-3",
                "provider": "Smartcar",
                "scope": ["location"],
                "status": "pending",
                **fields,
            }
        )
        session.add(row)
        session.commit()
        return row.id


def bulk_vehicles(
    conn: Connection, client_id: str, count: int, *, fleet_user: str | None, pending_every: int
) -> None:
    """`count` vehicles of one client in one statement (PostgreSQL), one a second apart,
    every `pending_every`th pending and the rest authorized; every other one belongs to
    `fleet_user` when given, the others each to a user of their own."""
    user = "CASE WHEN i % 2 = 0 THEN :fleet ELSE 'u' || i END" if fleet_user else "'u' || i"
    conn.execute(
        text(
            f"""
            INSERT INTO connected_vehicles
              (id, client_id, user_id, vehicle_id, provider, scope, status, version,
               attempts, created_at, updated_at)
            SELECT gen_random_uuid()::text, :client, {user}, 'tesla-model-3',
                   'Smartcar', '[]', CASE WHEN i % :every = 0 THEN 'pending'
                   ELSE 'authorized' END, 1, 0, now() - (i || ' seconds')::interval, now()
            FROM generate_series(1, :count) AS i
            """
        ),
        {"client": client_id, "fleet": fleet_user, "every": pending_every, "count": count},
    )


def vehicle_row(db: Database, vehicle_id: str) -> ConnectedVehicle:
    with db.session() as session:
        row = session.get(ConnectedVehicle, vehicle_id)
        assert row is not None
        return row


def events_of(db: Database, vehicle_id: str) -> list[str]:
    with db.session() as session:
        stmt = (
            select(OutboxEvent.type)
            .where(OutboxEvent.vehicle_id == vehicle_id)
            .order_by(OutboxEvent.seq)
        )
        return list(session.execute(stmt).scalars())


def row_counts(db: Database) -> dict[str, int]:
    from store.models import Base

    with db.session() as session:
        return {
            name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
            if name != "worker_heartbeats"  # the workers' liveness, not data
        }


def wait_until(fn: Callable[[], T], timeout: float = 15.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


# -- both databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    from tests.conftest import migrated_database

    database = migrated_database(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'cv.sqlite3'}")
    yield database
    database.engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The store and workflow tests run on PostgreSQL and on embedded SQLite."""
    from sqlalchemy import text

    from tests.conftest import TABLES

    if request.param == "postgresql":
        yield request.getfixturevalue("clean")
        return
    database: Database = request.getfixturevalue("_sqlite")
    yield database
    with database.engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


# -- RabbitMQ ------------------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of the test's own (the machine's RabbitMQ, guest on loopback),
    deleted after it."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("RabbitMQ (rabbitmqctl) is needed for this test")
    vhost = f"cv-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def broker() -> Iterator[str]:
    """A Redis db of the test's own (the run's next), flushed before and after: the
    session's in-process worker never takes what the test's own processes should."""
    import redis

    from tests.conftest import REDIS_BASE, REDIS_DB

    url = f"{REDIS_BASE}/{REDIS_DB + 1}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
