"""The fixtures that drive the service the way its users do (a pytest plugin, loaded by
tests/conftest.py). What the tests share that is not a fixture is in tests/helpers/."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from harness.tenant import APP_ID, APP_SECRET, CLIENT_PAGE, Tenant, make_tenant
from providers.fakes import FAKES
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer, serve_in_thread
from settings import Settings
from store.db import Database
from tests.helpers.api import AUTHORIZE, CREATE, GET, create_vehicle, error_code, gql
from tests.helpers.logs import JsonLines
from tests.helpers.rabbitmq import rabbitmqctl
from tests.helpers.stack import Service, started
from tests.helpers.store import add_vehicle, bulk_vehicles, events_of, row_counts, vehicle_row
from tests.helpers.wait import wait_until
from tests.helpers.webhooks import APP_SECRET as HOOKED_APP_SECRET
from tests.helpers.webhooks import SECRET as HOOKED_SECRET
from tests.helpers.webhooks import Receiver, hook

# The names test modules took from here before tests/helpers/ held them: still here for
# the files not moved to it yet (tests/api/test_graphiql.py,
# tests/api/test_graphql_http_errors.py). Import them from where they live.
__all__ = [
    "AUTHORIZE",
    "CLIENT_PAGE",
    "CREATE",
    "GET",
    "FakeServer",
    "Tenant",
    "add_vehicle",
    "bulk_vehicles",
    "consent",
    "create_vehicle",
    "error_code",
    "events_of",
    "gql",
    "make_tenant",
    "row_counts",
    "vehicle_row",
    "wait_until",
]


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


# -- webhooks ------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A client's webhook endpoint on loopback (tests/helpers/webhooks.py)."""
    r = Receiver()
    with serve_in_thread(r) as url:
        r.url = url + "/hooks"
        yield r


@pytest.fixture
def hooked(tenant: Tenant, fakes: dict[str, FakeServer]) -> Tenant:
    """The tenant, with webhook secrets at Enode and Smartcar."""
    return hook(tenant, fakes, webhook_secret=HOOKED_SECRET, app_secret=HOOKED_APP_SECRET)


# -- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def json_lines(caplog: pytest.LogCaptureFixture) -> Iterator[JsonLines]:
    """Every line logged in this process while the test runs, as JSON (the root's level
    INFO meanwhile)."""
    caplog.set_level(logging.INFO)  # the root's level, restored after the test
    lines = JsonLines()
    logging.getLogger().addHandler(lines.handler)
    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(lines.handler)


# -- the service over real processes --------------------------------------------------------------


@pytest.fixture
def service(clean: Database, tmp_path: Path) -> Iterator[Service]:
    """The service as `make run` runs it (tests/helpers/stack.py), for the end-to-end and
    browser tests."""
    with started() as running:
        yield running


# -- both databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    from tests.helpers.run import migrated_database

    database = migrated_database(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'cv.sqlite3'}")
    yield database
    database.engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The store and workflow tests run on PostgreSQL and on embedded SQLite."""
    from sqlalchemy import text

    from tests.helpers.run import TABLES

    if request.param == "postgresql":
        yield request.getfixturevalue("clean")
        return
    database: Database = request.getfixturevalue("_sqlite")
    yield database
    with database.engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


# -- RabbitMQ ------------------------------------------------------------------------------------


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

    from tests.helpers.run import REDIS_BASE, REDIS_DB

    url = f"{REDIS_BASE}/{REDIS_DB + 1}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
