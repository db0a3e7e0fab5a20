"""GET /metrics: behind its token; requests counted by operation and outcome; the
scrape's gauges (queue depth, outbox lag); prometheus-client's multiprocess mode; no
label ever takes a value the caller made up; the Grafana dashboard asks only for
metrics that exist."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker
from starlette.testclient import TestClient

import metrics
from api.metrics import ScrapeGauges
from celeryconfig import QUEUES
from harness import answers, free_port, process, wait_for
from harness.broker import celery_client
from harness.tenant import Tenant
from providers import ADAPTERS
from providers.http import MeteredTransport
from providers.names import Provider
from settings import Settings
from store.db import Database, make_engine
from store.models import OutboxEvent, WorkerHeartbeat, utcnow
from tests.helpers.api import create_vehicle
from tests.helpers.metrics import value
from tests.helpers.rabbitmq import rabbitmqctl
from tests.helpers.run import REDIS_BASE
from tests.helpers.wait import wait_until
from tests.helpers.ws import connect, init, subscribe
from workers.metering import STEP_NAMES
from workflows.errors import ErrorCode

TOKEN = "metrics-secret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DASHBOARD = Path(__file__).parents[2] / "ops" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def metrics_api(db: Database, settings: Settings) -> Iterator[TestClient]:
    from api.app import create_app

    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}))
    with TestClient(app, follow_redirects=False) as client:
        yield client
    app.state.db.engine.dispose()


def scrape(client: TestClient) -> str:
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return str(answer.text)


def test_metrics_asks_for_its_token(api: TestClient, metrics_api: TestClient) -> None:
    assert api.get("/metrics", headers=AUTH).status_code == 404  # no token set: none
    assert metrics_api.get("/metrics").status_code == 401
    assert metrics_api.get("/metrics", headers={"authorization": "Bearer no"}).status_code == 401
    assert "cv_requests_total" in scrape(metrics_api)


def test_requests_by_operation_and_outcome(metrics_api: TestClient) -> None:
    # Given the counts before
    before = scrape(metrics_api)
    query = '{ connectedVehicle(id: "2f0c") { id } }'

    # When a GraphQL request without a token, a health check and a path of no route come
    metrics_api.post("/graphql", json={"query": query})
    metrics_api.get("/healthz")
    metrics_api.get("/no/such/path")
    after = scrape(metrics_api)

    # Then each is counted under its operation and outcome, and timed
    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    bad_token = {"operation": "connectedVehicle", "outcome": "AUTH_TOKEN_INVALID"}
    assert delta("cv_requests_total", **bad_token) == 1
    assert delta("cv_request_duration_seconds_count", operation="connectedVehicle") == 1
    assert delta("cv_requests_total", operation="/healthz", outcome="2xx") == 1
    assert delta("cv_requests_total", operation="other", outcome="4xx") == 1


def test_subscriptions_open_started_and_ended(metrics_api: TestClient, tenant: Tenant) -> None:
    headers = tenant.headers()
    vehicle_id = create_vehicle(metrics_api, headers)["id"]
    before = scrape(metrics_api)
    with connect(metrics_api) as ws:
        init(ws, headers)
        # Given a running subscription, and one to a vehicle that is not there
        subscribe(ws, "1", vehicle_id)
        assert ws.receive_json()["type"] == "next"
        subscribe(ws, "2", str(uuid.uuid4()))
        assert ws.receive_json()["id"] == "2"
        during = scrape(metrics_api)
        # When the client stops the first
        ws.send_json({"id": "1", "type": "complete"})
        wait_until(lambda: value(scrape(metrics_api), "cv_subscriptions_open") == 0)
    after = scrape(metrics_api)

    # Then one was open while it ran, none after; one started, one ended not found
    def delta(text: str, outcome: str) -> float:
        sample = "cv_subscriptions_total"
        return value(text, sample, outcome=outcome) - value(before, sample, outcome=outcome)

    assert value(during, "cv_subscriptions_open") == 1
    assert value(after, "cv_subscriptions_open") == 0
    assert delta(after, "started") == 1
    assert delta(after, "CONNECTED_VEHICLE_NOT_FOUND") == 1


def test_queue_depth_and_outbox_lag_are_read_at_scrape(clean: Database) -> None:
    # Given two messages waiting on the webhooks queue (Redis db 8, this test's) and an
    # event unpublished for two minutes
    url = f"{REDIS_BASE}/8"
    broker = redis.Redis.from_url(url)
    broker.delete(*QUEUES)
    broker.rpush("cv.webhooks", b"one", b"two")
    with clean.session() as session:
        session.add(
            OutboxEvent(
                type="connected_vehicle.created",
                vehicle_id="v1",
                client_id="c1",
                payload={},
                created_at=utcnow() - timedelta(seconds=120),
            )
        )
        session.commit()
    gauges = ScrapeGauges(clean, url)
    try:
        # When Prometheus scrapes
        text = metrics.exposition(gauges).decode()
    finally:
        gauges.close()
        broker.delete(*QUEUES)

    # Then
    assert value(text, "cv_queue_depth", queue="cv.webhooks") == 2
    assert value(text, "cv_queue_depth", queue="cv") == 0
    assert 120 <= value(text, "cv_outbox_lag_seconds") < 180


def queue_depths(text: str) -> dict[str, float]:
    """Every cv_queue_depth sample of the scrape (none when the family is missing)."""
    return {
        s.labels["queue"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cv_queue_depth"
    }


def test_queue_depth_on_rabbitmq(clean: Database, rabbitmq_vhost: str) -> None:
    gauges = ScrapeGauges(clean, rabbitmq_vhost)
    celery = celery_client(rabbitmq_vhost)  # the service's queues: quorum, on exchange cv
    try:
        # Given a vhost where nothing is declared yet: every passive declare is refused
        # (404, which closes the channel), and the scrape still answers
        text = metrics.exposition(gauges).decode()
        assert queue_depths(text) == dict.fromkeys(QUEUES, 0)
        assert "cv_outbox_lag_seconds 0.0" in text

        # When only cv.webhooks exists, between two that do not (no worker consumes)
        for _ in range(2):
            celery.send_task("cv.deliver_webhook", args=["d1"])
        # Then it is read, after the missing cv and before the missing cv.housekeeping
        assert queue_depths(metrics.exposition(gauges).decode()) == {
            "cv": 0,
            "cv.webhooks": 2,
            "cv.housekeeping": 0,
        }

        # When the other two get messages too (counts apart, so that a mixed-up label shows)
        for _ in range(3):
            celery.send_task("cv.noop")
        celery.send_task("cv.relay_outbox")
        text = metrics.exposition(gauges).decode()
    finally:
        celery.close()
        gauges.close()

    # Then each queue's depth is its count, and they are the service's quorum queues
    assert queue_depths(text) == {"cv": 3, "cv.webhooks": 2, "cv.housekeeping": 1}
    vhost = rabbitmq_vhost.rsplit("/", 1)[1]
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "type")
    assert sorted(line.split() for line in listed.splitlines()) == [
        [queue, "quorum"] for queue in sorted(QUEUES)
    ]


def test_workers_count_into_the_web_through_the_directory(tmp_path: Path) -> None:
    # Given the file of a process that is gone
    directory = tmp_path / "metrics"
    directory.mkdir()
    dead = directory / "counter_999999999.db"
    dead.write_bytes(b"")
    # When another process (a worker) starts in multiprocess mode and counts
    script = (
        "import metrics; metrics.start(); "
        "metrics.SWEEP_ACTIONS.labels('expired').inc(3); "
        "metrics.STEP_SECONDS.labels('validate').observe(0.2)"
    )
    env = {**os.environ, "CV_METRICS_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)

    # Then the dead process's file is gone, and the web's scrape adds up the worker's
    assert not dead.exists()
    text = "".join(
        f"{s.name}{s.labels} {s.value}\n"
        for family in metrics._Files(str(directory)).collect()
        for s in family.samples
    )
    assert "cv_sweep_actions_total{'action': 'expired'} 3.0" in text
    assert "cv_step_duration_seconds_count{'step': 'validate'} 1.0" in text


def test_a_worker_host_without_a_web_exports_its_workers(tmp_path: Path) -> None:
    # Given a host's metrics directory where a running worker process counted
    directory = tmp_path / "metrics"
    env = {**os.environ, "CV_METRICS_DIR": str(directory), "CV_METRICS_TOKEN": "scrape-me"}
    worker = (
        "import time, metrics; metrics.start(); "
        "metrics.SWEEP_ACTIONS.labels('redriven').inc(2); time.sleep(120)"
    )
    port = free_port()
    exporter = [sys.executable, "-m", "api.exporter", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with process("worker", [sys.executable, "-c", worker], env, show=False):
        wait_for(lambda: any(directory.glob("counter_*.db")), "the worker's count", 60)

        # When the exporter runs there (no web on the host)
        with process("exporter", exporter, env, show=False):
            wait_for(answers(f"{url}/healthz"), "the exporter", 60)
            denied = httpx.get(f"{url}/metrics", timeout=10)
            scraped = httpx.get(
                f"{url}/metrics", headers={"authorization": "Bearer scrape-me"}, timeout=10
            )

    # Then Prometheus, with the token, reads the worker's counts, and no service-wide
    # gauge (the web's scrape has them: once per host they would be counted twice)
    assert denied.status_code == 401
    assert value(scraped.text, "cv_sweep_actions_total", action="redriven") == 2
    assert "cv_queue_depth" not in scraped.text
    assert "cv_outbox_lag_seconds" not in scraped.text


@pytest.mark.parametrize("unset", ["CV_METRICS_DIR", "CV_METRICS_TOKEN"])
def test_the_exporter_refuses_to_start_without_its_settings(tmp_path: Path, unset: str) -> None:
    env = {**os.environ, "CV_METRICS_DIR": str(tmp_path), "CV_METRICS_TOKEN": "t"}
    del env[unset]
    done = subprocess.run(
        [sys.executable, "-m", "api.exporter", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert f"refusing to start: {unset} is not set" in done.stderr


# -- high-cardinality input never becomes a label ---------------------------------------


def known_label_values(schema_fields: set[str], route_paths: set[str]) -> dict[str, set[str]]:
    codes = {c.value for c in ErrorCode} | {"INTERNAL_SERVER_ERROR"}
    statuses = (
        {str(s) for s in range(100, 600)} & {str(s) for s in metrics._STATUSES}
        | {f"{c}xx" for c in range(1, 6)}
        | {"timeout", "error", "other"}
    )
    endpoints = {path for adapter in ADAPTERS.values() for path in adapter.endpoints}
    return {
        "operation": schema_fields | route_paths | {"multiple", "introspection", "other"},
        "outcome": codes
        | {f"{c}xx" for c in range(1, 6)}
        | set(metrics.STEP_OUTCOMES)
        | set(metrics.WEBHOOK_OUTCOMES)
        | {"authorized", metrics.STARTED, "other"},
        "provider": {p.value for p in Provider} | {"other"},
        "endpoint": endpoints | {"other"},
        "status": statuses,
        "step": set(STEP_NAMES.values()),
        "queue": set(QUEUES),
        "action": set(metrics.SWEEP_ACTION_NAMES),
        "le": set(),  # a histogram's buckets: numbers, checked apart
    }


def test_high_cardinality_input_never_becomes_a_label(metrics_api: TestClient) -> None:
    rnd = [secrets.token_hex(6) for _ in range(40)]
    # Given random ids, operation names, field names, paths and provider URLs
    for i, r in enumerate(rnd[:10]):
        metrics_api.post(
            "/graphql",
            json={
                "query": f'query Op_{r} {{ connectedVehicle(id: "{r}") {{ id }} }}',
                "operationName": f"Op_{r}",
            },
        )
        metrics_api.post("/graphql", json={"query": f"{{ f_{r} }}"})
        metrics_api.post("/graphql", json={"query": f"{{ a_{r}: connectedVehicleList {{ x }}"})
        metrics_api.get(f"/p/{r}/{i}")
        metrics_api.post(f"/webhooks/{r}", content=b"{}")
        metrics_api.post(f"/ops/vehicles/{r}/redrive")
        metrics_api.get(f"/oauth/callback?state={r}&code={r}")
    for r in rnd[10:30]:
        adapter_cls = ADAPTERS[Provider.Smartcar]
        status = int(r[:2], 16) % 500 + 100  # any status at all
        transport = MeteredTransport(
            httpx.MockTransport(lambda request, status=status: httpx.Response(status)),
            "Smartcar",
            tuple(tuple(p.strip("/").split("/")) for p in adapter_cls.endpoints),
        )
        with httpx.Client(transport=transport) as client:
            client.get(f"https://{r}.example/v2.0/vehicles/{r}/{r}")
            client.get(f"https://api.example/v2.0/vehicles/{r}")  # a known template
    for r in rnd[30:]:
        metrics.AUTHORIZATIONS.labels(metrics.fold(r, {p.value for p in Provider}), "x")

    # When Prometheus scrapes
    text = scrape(metrics_api)

    # Then no label value is one the input made up, and none of it appears anywhere
    app = metrics_api.app
    schema = app.state.graphql.schema._schema  # type: ignore[attr-defined]
    fields = {
        name
        for t in (schema.query_type, schema.mutation_type, schema.subscription_type)
        if t is not None
        for name in t.fields
    }
    routes = {r.path for r in app.routes}  # type: ignore[attr-defined]
    known = known_label_values(fields, routes)
    known["outcome"].add("x")  # the one the test gave on purpose
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("cv_"):
            continue
        for sample in family.samples:
            for label, v in sample.labels.items():
                seen.setdefault(label, set()).add(v)
                if label == "le":
                    float(v)
                    continue
                assert v in known[label], (sample.name, label, v)
    assert not any(r in text for r in rnd)
    assert "/v2.0/vehicles/{id}" in seen["endpoint"] and "other" in seen["endpoint"]
    assert {"connectedVehicle", "other"} <= seen["operation"]


# -- the dashboard ----------------------------------------------------------------------


def test_the_dashboard_asks_only_for_metrics_that_exist(metrics_api: TestClient) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    asked = {name for expr in exprs for name in re.findall(r"\bcv_[a-z_]+\b", expr)}

    text = scrape(metrics_api)
    offered: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
            "gauge": [""],
        }[family.type]
        offered |= {family.name + s for s in suffixes}
    assert asked, "the dashboard queries nothing"
    assert asked <= offered, asked - offered
    # and every family of the service has a panel
    families = {n for n in offered if n.startswith("cv_") and not n.endswith("_created")}
    for base in {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in families}:
        assert any(base in expr for expr in exprs), base


# -- the workers' heartbeats ------------------------------------------------------------

HEARTBEAT_GAUGES = (
    "cv_workers_beating",
    "cv_worker_heartbeat_age_seconds",
    "cv_worker_heartbeat_max_age_seconds",
)


def heartbeat_gauges(text: str) -> dict[str, list[float]]:
    """Each heartbeat gauge's sample values in the scrape (a family listed without a
    sample: empty; a family missing: not a key)."""
    return {
        family.name: [s.value for s in family.samples]
        for family in text_string_to_metric_families(text)
        if family.name in HEARTBEAT_GAUGES
    }


def test_worker_heartbeats_are_read_at_scrape(
    metrics_api: TestClient, db: Database, settings: Settings
) -> None:
    # (worker_heartbeats is not among the tables emptied after each test: this one's own)
    with db.engine.begin() as conn:
        conn.execute(delete(WorkerHeartbeat))
    try:
        # Given no worker process has a row: none beats, no newest beat, none silent
        assert heartbeat_gauges(scrape(metrics_api)) == {
            "cv_workers_beating": [0.0],
            "cv_worker_heartbeat_age_seconds": [],
            "cv_worker_heartbeat_max_age_seconds": [0.0],
        }

        # When two processes beat within the dead time and a third has gone silent (the
        # sweep suspects it and has not removed it yet)
        dead = settings.worker_dead_seconds
        now = utcnow()
        with db.session() as session:
            session.add_all(
                [
                    WorkerHeartbeat(
                        id="steps-1@h/h:1:aa",
                        started_at=now - timedelta(hours=1),
                        beat_at=now - timedelta(seconds=dead / 5),
                    ),
                    WorkerHeartbeat(
                        id="ops-2@h/h:2:bb",
                        started_at=now - timedelta(hours=2),
                        beat_at=now - timedelta(seconds=dead / 2),
                    ),
                    WorkerHeartbeat(
                        id="h:3:cc",
                        started_at=now - timedelta(hours=3),
                        beat_at=now - timedelta(seconds=dead + 120),
                        suspected_at=now - timedelta(seconds=100),
                    ),
                ]
            )
            session.commit()
        gauges = heartbeat_gauges(text := scrape(metrics_api))
    finally:
        with db.engine.begin() as conn:
            conn.execute(delete(WorkerHeartbeat))

    # Then two beat; the newest beat's age and the silent one's, and no process's id
    assert gauges["cv_workers_beating"] == [2.0]
    [newest] = gauges["cv_worker_heartbeat_age_seconds"]
    assert dead / 5 <= newest < dead / 5 + 30
    [silent] = gauges["cv_worker_heartbeat_max_age_seconds"]
    assert dead + 120 <= silent < dead + 150
    assert not any(name in text for name in ("steps-1@h", "ops-2@h", "h:3:cc"))


def test_worker_heartbeats_left_out_while_the_database_is_away() -> None:
    # Given the web's database does not answer (nothing listens on its port)
    url = f"postgresql+psycopg://cv@127.0.0.1:{free_port()}/cv"
    engine = make_engine(url, connect_args={"connect_timeout": 2})
    away = Database(engine, sessionmaker(engine))
    gauges = ScrapeGauges(away, f"{REDIS_BASE}/8")
    try:
        # When Prometheus scrapes
        text = metrics.exposition(gauges).decode()
    finally:
        gauges.close()
        engine.dispose()

    # Then the scrape answers, without the database's gauges, with the broker's
    assert heartbeat_gauges(text) == {}
    assert "cv_outbox_lag_seconds" not in text
    assert set(queue_depths(text)) == set(QUEUES)
