"""Fault tests over real processes, bounded in time: worker processes and beat on a broker
of the run's own, PostgreSQL, the fake Smartcar on loopback. Each asserts, from the
database and the fake's counters: every vehicle terminal, none lost, no transition or
event twice, no code exchanged twice."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from harness import Report, cluster, path_env, redis_server, run_until
from harness.procs import BIN
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle
from tests.helpers.api import AUTHORIZE, CREATE
from tests.helpers.faults import LATENCY, WORKER_PROCESSES, assert_kept
from tests.helpers.run import DB_NAME, PG_ADMIN_URL
from tests.helpers.stack import watch_consent

pytestmark = pytest.mark.faults


def kill_one_worker_midway(
    db: Database, settings: Settings, smartcar: FakeServer, broker: str, n: int
) -> Report:
    """N authorizations on two workers, one killed once a fifth are done. With the
    service's own stall and claim deadlines (60 s, 300 s), not the harness's short ones:
    only the dead worker's missing heartbeat (CV_WORKER_DEAD_SECONDS, 15 s) gets its
    claims and steps back within the wait below (issue 17: the claim timeout, 300 s)."""
    with cluster(
        db, settings, smartcar, broker, CV_STALL_SECONDS="60", CV_CLAIM_TIMEOUT_SECONDS="300"
    ) as c:
        c.smartcar.fake.latency = LATENCY
        c.put_in_flight(n)
        run_until(lambda: c.count("authorized") >= n // 5, 60, "the first fifth authorized")
        c.kill_worker(0)  # kill -9, pool processes and all
        fault_at = time.monotonic()
        c.wait_until_terminal(50)
        return c.report("worker killed", time.monotonic() - fault_at)


def test_a_worker_killed_midway(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    report = kill_one_worker_midway(clean, settings, smartcar, broker, 300)
    assert_kept(report, interrupted_with_a_worker=WORKER_PROCESSES)


@pytest.mark.extra  # (Redis killed and started again: test_broker_restart.py)
def test_redis_restarted_empty(clean: Database, settings: Settings, smartcar: FakeServer) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for this fault test")
    with redis_server() as broker, cluster(clean, settings, smartcar, broker.url) as c:
        c.smartcar.fake.latency = LATENCY
        c.put_in_flight(150)
        run_until(lambda: c.count("authorized") >= 20, 60, "the first authorized")
        broker.restart_empty()  # queued and unacked messages: gone
        fault_at = time.monotonic()
        c.wait_until_terminal(120)
        report = c.report("redis restarted empty", time.monotonic() - fault_at)
        # (the tasks cancelled with the connection finished their exchanges: none lost)
        assert_kept(report)


def test_a_flapping_provider(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    # 30% of calls fail: 5xx on the token endpoint, 429 with Retry-After on the vehicle
    # list, timeouts on the vehicle reads
    smartcar.fault("/oauth/token", 503, times=10**6, probability=0.3)
    smartcar.fault("/v2.0/vehicles/", 0, times=10**6, probability=0.3, delay=1.2)
    smartcar.fault("/v2.0/vehicles", 429, times=10**6, probability=0.3, retry_after=1)
    # Only a step's first attempt re-tries reads inline, so a later attempt (four calls)
    # gets through 0.7^4 of the time: 40 attempts leave ~1 in 50,000 vehicles failed.
    with cluster(clean, settings, smartcar, broker, CV_RETRY_MAX_ATTEMPTS="40") as c:
        start = time.monotonic()
        c.put_in_flight(100)
        c.wait_until_terminal(150)
        report = c.report("provider flapping 30%", time.monotonic() - start)
    assert report.provider_retries > 0
    assert_kept(report)


def test_lost_token_answers_over_http(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    """Users' journeys over HTTP end to end (the GraphQL API, consent at the fake, the
    browser back at the web's /oauth/callback, which enqueues validation), while 30% of
    the fake's token answers are lost after it spent the code. No code is sent twice;
    each vehicle ends authorized or failed AUTHORIZATION_INTERRUPTED (retryable)."""
    smartcar.fake.latency = LATENCY
    # processed at the fake, then a 504 instead of the tokens
    smartcar.fault("/oauth/token", 504, times=10**6, probability=0.3, lose_answer=True)
    with cluster(clean, settings, smartcar, broker, web=True) as c:
        start = time.monotonic()
        c.put_in_flight_over_http(100)
        c.wait_until_terminal(40)
        report = c.report("token answers lost 30%", time.monotonic() - start)
        with clean.session() as session:
            interrupted = session.execute(
                select(ConnectedVehicle.failure_retryable, ConnectedVehicle.code_claimed_at).where(
                    ConnectedVehicle.id.in_(c.vehicles),
                    ConnectedVehicle.failure_code == "AUTHORIZATION_INTERRUPTED",
                )
            ).all()
    print(report.line())
    lost_answers = report.failures.get("AUTHORIZATION_INTERRUPTED", 0)
    assert report.started == 100, report
    assert report.lost == 0 and report.terminal == report.started, report
    assert set(report.failures) <= {"AUTHORIZATION_INTERRUPTED"}, report
    assert lost_answers >= 1, report  # the fault bit
    assert report.authorized >= 1, report
    assert report.authorized + lost_answers == report.started, report
    assert report.duplicated_transitions == 0, report
    assert report.duplicated_events == 0, report
    assert report.double_exchanges == 0, report
    assert report.codes_sent_twice == 0, report
    # every code reached the token endpoint exactly once
    assert smartcar.fake.exchange_attempts == report.started, report
    assert all(smartcar.fake.code_attempts[code] == 1 for code in c.codes), report
    assert len(interrupted) == lost_answers
    assert all(retryable is True and claimed is None for retryable, claimed in interrupted)


def test_duplicate_callbacks_and_concurrent_authorize_calls(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    """Each callback delivered 5 times at once, then authorizeConnectedVehicle 5 times at
    once; and, for vehicles whose client took the callback, authorize with the code 5
    times at once. One exchange, one transition, one event per vehicle."""
    smartcar.fake.latency = LATENCY
    with cluster(clean, settings, smartcar, broker, web=True) as c:
        web = c.env["CV_PUBLIC_URL"]
        headers = c.tenant.headers("racer")

        def gql(query: str, **variables: object) -> dict:
            answer = httpx.post(
                f"{web}/graphql",
                json={"query": query, "variables": variables},
                headers=headers,
                timeout=60,
            )
            return dict(answer.json())

        def started() -> tuple[str, str]:
            body = gql(CREATE, input={"vehicle_id": "tesla-model-3", "provider": "Smartcar"})
            vehicle = body["data"]["createConnectedVehicle"]
            return vehicle["id"], consent(vehicle["authorization_url"])

        with ThreadPoolExecutor(max_workers=20) as pool:
            by_callback = list(pool.map(lambda _: started(), range(10)))
            by_code = list(pool.map(lambda _: started(), range(10)))
            callbacks = list(
                pool.map(
                    lambda back: httpx.get(back).status_code,
                    [back for _, back in by_callback for _ in range(5)],
                )
            )
            calls = [(vid, None) for vid, _ in by_callback for _ in range(5)] + [
                (vid, parse_qs(urlsplit(back).query)["code"][0])
                for vid, back in by_code
                for _ in range(5)
            ]
            answers = list(
                pool.map(
                    lambda call: gql(
                        AUTHORIZE, input={"id": call[0], "options": {"code": call[1]}}
                    ),
                    calls,
                )
            )
        c.vehicles = [vid for vid, _ in by_callback + by_code]
        c.codes = [parse_qs(urlsplit(back).query)["code"][0] for _, back in by_callback + by_code]
        c.wait_until_terminal(60)
        report = c.report("duplicate deliveries", 0.0)

    # one delivery of each callback spends the state (a page: no redirect_uri was given)
    assert sorted(callbacks) == [200] * 10 + [400] * 40
    assert [a for a in answers if a.get("errors")] == []
    statuses = [a["data"]["authorizeConnectedVehicle"]["status"] for a in answers]
    assert statuses == ["authorized"] * len(calls), answers
    assert smartcar.fake.exchange_attempts == 20
    assert_kept(report)


def test_postgres_connections_dropped(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    """Every backend of the run's database terminated every 0.5 s for up to 10 s, while
    users create vehicles over HTTP, consent, and come back to /oauth/callback (issue 17:
    12 creates answered INTERNAL_SERVER_ERROR and 4 callbacks HTTP 500, their consent
    lost until the vehicle expired). Now: no internal error anywhere; a request the
    database could not serve answers 503 (SERVICE_UNAVAILABLE, or the callback's page
    that asks for a reload) and asking again completes it; every consent is recorded and
    every vehicle authorized."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    stop = threading.Event()
    rounds = 0

    def drop_connections() -> None:
        nonlocal rounds
        deadline = time.monotonic() + 10
        while not stop.wait(0.5) and time.monotonic() < deadline:
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": DB_NAME},
                )
            rounds += 1

    try:
        with cluster(clean, settings, smartcar, broker, web=True) as c:
            c.smartcar.fake.latency = LATENCY
            dropper = threading.Thread(target=drop_connections, daemon=True)
            dropper.start()
            try:
                c.put_in_flight_over_http(120)  # the drops go on meanwhile
            except BaseException:
                stop.set()
                raise
            finally:
                dropper.join()  # its 10 s: validation goes on through them too
            fault_at = time.monotonic()
            c.wait_until_terminal(120)
            report = c.report("postgres connections dropped", time.monotonic() - fault_at)
            answers = dict(c.answers)
    finally:
        admin.dispose()
    print(report.line(), answers, f"rounds of drops {rounds}")
    assert rounds >= 15, rounds  # the fault went on while users came and went
    assert not [hop for hop, outcome in answers if outcome == "500"], answers
    assert report.authorized == report.started == 120, report  # every consent recorded
    assert_kept(report)


@pytest.mark.extra  # (the same fault on Redis: test_a_worker_killed_midway)
def test_a_worker_killed_midway_on_rabbitmq(
    clean: Database, settings: Settings, smartcar: FakeServer, rabbitmq_vhost: str
) -> None:
    report = kill_one_worker_midway(clean, settings, smartcar, rabbitmq_vhost, 300)
    assert_kept(report, interrupted_with_a_worker=WORKER_PROCESSES)


def test_events_on_rabbitmq(
    clean: Database, settings: Settings, smartcar: FakeServer, rabbitmq_vhost: str
) -> None:
    """RabbitMQ as the broker, events on Redis (CV_EVENTS_REDIS_URL): a vehicle created
    over HTTP, its user's consent and callback; its subscriber sees it authorized."""
    import asyncio

    with cluster(clean, settings, smartcar, rabbitmq_vhost, workers=1, web=True) as c:
        web = c.env["CV_PUBLIC_URL"]
        headers = c.tenant.headers("rabbit")
        created = httpx.post(
            f"{web}/graphql",
            json={
                "query": CREATE,
                "variables": {"input": {"vehicle_id": "tesla-model-3", "provider": "Smartcar"}},
            },
            headers=headers,
            timeout=30,
        ).json()["data"]["createConnectedVehicle"]

        seen = asyncio.run(asyncio.wait_for(watch_consent(web, headers, created), 60))
    assert seen == ["pending", "authorized"]


def test_rabbitmq_without_an_events_redis_is_refused_at_start(settings: Settings) -> None:
    """The events need Redis: with an amqp broker and no CV_EVENTS_REDIS_URL, the web and
    the worker refuse to start and name the setting."""
    from api.app import create_app

    amqp = settings.model_copy(update={"broker_url": "amqp://guest:guest@127.0.0.1:5672//"})
    with pytest.raises(RuntimeError, match="CV_EVENTS_REDIS_URL"):
        create_app(amqp)
    env = {**path_env(), "CV_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}
    env.pop("CV_EVENTS_REDIS_URL", None)
    worker = subprocess.run(
        [str(BIN / "celery"), "-A", "workers.app", "worker", "--loglevel=WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 78
    assert "CV_EVENTS_REDIS_URL" in worker.stderr
