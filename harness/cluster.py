"""A small cluster of the service's real processes for fault runs: worker processes and
beat on a broker of the run's own, PostgreSQL, and the fake Smartcar over loopback. Used
by the fault tests (bounded sizes) and by `bench/chaos` (larger ones).

A run puts N authorizations in flight (each vehicle created, its user's consent given at
the fake, the callback received), lets a fault happen, waits for every vehicle to end,
and reports from the database and the fake's counters. `put_in_flight` does the creating
and the callback in process; `put_in_flight_over_http` does them as users do, through the
web (the GraphQL API, the browser sent back to /oauth/callback).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select

from harness.broker import celery_client
from harness.procs import Browsers, free_port, path_env
from harness.service import Service, service
from harness.tenant import Tenant, make_tenant, register_app
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from providers.names import Provider
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, OutboxEvent
from workflows.authorization import create_connected_vehicle, receive_callback
from workflows.registry import REGISTRY
from workflows.steps import Step
from workflows.user_tokens import Principal

__all__ = ["CREATE", "Cluster", "Report", "cluster"]

CREATE = """mutation($input: CreateConnectedVehicleInput!) {
  createConnectedVehicle(input: $input) { id status authorization_url } }"""


@dataclass
class Report:
    """What a fault run shows: each number but `started`, `terminal`, `authorized`, the
    retries and the times should be 0 for the service to keep its promises.
    `double_exchanges`: codes the fake exchanged for tokens twice (it refuses a spent
    code, so this stays 0 whatever the service does); `codes_sent_twice`: codes that
    reached the fake's token endpoint more than once, spent or not (a worker killed after
    the provider answered may leave one such code per pool process, see docs/operations.md)."""

    fault: str
    started: int
    terminal: int = 0
    authorized: int = 0
    lost: int = 0
    duplicated_transitions: int = 0
    duplicated_events: int = 0
    double_exchanges: int = 0
    codes_sent_twice: int = 0
    provider_retries: int = 0
    seconds_to_recover: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.fault:<24} started {self.started:>5}  terminal {self.terminal:>5}  "
            f"lost {self.lost}  duplicated transitions {self.duplicated_transitions}  "
            f"duplicated events {self.duplicated_events}  double exchanges "
            f"{self.double_exchanges}  codes sent twice {self.codes_sent_twice}  "
            f"retries {self.provider_retries:>5}  "
            f"recovered in {self.seconds_to_recover:.1f}s"
            + (f"  failed {self.failures}" if self.failures else "")
        )


class Cluster:
    """The processes (`service`), the tenant, and the run's vehicles and codes."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        smartcar: FakeServer,
        broker_url: str,
        service: Service,
        concurrency: int | None,
        pool: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.smartcar = smartcar
        self.broker_url = broker_url
        self.service = service
        self.env = service.env
        self.concurrency = concurrency
        self.pool = pool
        self.tenant: Tenant = make_tenant(db, {"Smartcar": smartcar}, "Chaos")
        self.celery = celery_client(broker_url)
        self.vehicles: list[str] = []
        self.codes: list[str] = []
        self.web: str | None = None  # the web's base URL, once started
        # (hop, outcome) → count, of the journeys over HTTP: `2xx`, `503`, `5xx`, ...
        self.answers: Counter[tuple[str, str]] = Counter()

    # -- processes -----------------------------------------------------------------------------

    def start_worker(self, concurrency: int | None = None) -> None:
        self.service.start_worker(pool=self.pool, concurrency=concurrency or self.concurrency)

    def start_beat(self) -> None:
        self.service.start_beat()

    def start_web(self) -> str:
        self.web = self.service.start_web()
        return self.web

    def kill_worker(self, index: int = 0) -> None:
        self.service.kill_worker(index)

    def stop(self) -> None:
        self.service.stop()

    def logs(self) -> str:
        return self.service.logs()

    # -- the work ----------------------------------------------------------------------------------

    def put_in_flight(self, n: int, *, enqueue: bool = True) -> None:
        """N users each create a vehicle, consent at the fake and come back; the callback
        is received (the code stored) and, with `enqueue`, validation is enqueued."""
        who = Principal(self.tenant.client_id, "chaos-user")

        def one(_: int) -> tuple[str, str]:
            with self.db.session() as session:
                vehicle = create_connected_vehicle(
                    session,
                    self.settings,
                    who,
                    vehicle_id="tesla-model-3",
                    provider=Provider.Smartcar,
                    label=None,
                    redirect_uri=None,
                    scope=None,
                )
            assert vehicle.authorization_url
            back = parse_qs(urlsplit(consent(vehicle.authorization_url)).query)
            with self.db.session() as session:
                receive_callback(session, back["state"][0], back["code"][0], None)
            return vehicle.id, back["code"][0]

        with ThreadPoolExecutor(max_workers=8) as pool:
            for vehicle_id, code in pool.map(one, range(n)):
                self.vehicles.append(vehicle_id)
                self.codes.append(code)
        if enqueue:
            self.enqueue_all()

    def put_in_flight_over_http(self, n: int, *, user: str = "chaos-user") -> None:
        """N journeys as users make them, over HTTP end to end: createConnectedVehicle at
        the web's GraphQL API, consent at the fake, the browser back at the web's
        /oauth/callback, which stores the code and enqueues validation. Needs the cluster
        started with `web=True`. A step that answers otherwise than it should raises."""
        web = self.web
        if web is None:
            raise RuntimeError("put_in_flight_over_http needs the web: cluster(..., web=True)")
        headers = self.tenant.headers(user)
        variables = {"input": {"vehicle_id": "tesla-model-3", "provider": "Smartcar"}}
        browsers = Browsers(timeout=30)

        def create(client: httpx.Client) -> dict[str, Any]:
            # A client that honours SERVICE_UNAVAILABLE (503, retryable): it asks again.
            for _ in range(_ASK_AGAIN):
                answer = client.post(
                    f"{web}/graphql",
                    json={"query": CREATE, "variables": variables},
                    headers=headers,
                )
                self.answers[("createConnectedVehicle", _outcome(answer))] += 1
                if answer.status_code != 503:
                    break
                time.sleep(float(answer.headers.get("retry-after", "1")))
            body = answer.json() if answer.status_code == 200 else {}
            vehicle = (body.get("data") or {}).get("createConnectedVehicle")
            if body.get("errors") or not vehicle or not vehicle.get("authorization_url"):
                raise RuntimeError(
                    f"createConnectedVehicle answered {answer.status_code}: {answer.text[:500]}"
                )
            return dict(vehicle)

        def call_back(client: httpx.Client, back: str) -> None:
            # A user who reloads the page that asks for it (503 with Retry-After).
            for _ in range(_ASK_AGAIN):
                called_back = client.get(back)
                self.answers[("/oauth/callback", _outcome(called_back))] += 1
                if called_back.status_code != 503:
                    break
                time.sleep(float(called_back.headers.get("retry-after", "1")))
            # a page (no redirect_uri was given), or a 303 on to the client's page
            if called_back.status_code not in (200, 303):
                raise RuntimeError(
                    f"/oauth/callback answered {called_back.status_code}: {called_back.text[:500]}"
                )

        def one(_: int) -> tuple[str, str]:
            client = browsers.get()
            vehicle = create(client)
            back = consent(vehicle["authorization_url"], client=client)
            if not back.startswith(f"{web}/oauth/callback?"):
                raise RuntimeError(f"the fake sent the browser elsewhere: {back}")
            code = parse_qs(urlsplit(back).query).get("code", [""])[0]
            if not code:
                raise RuntimeError(f"the fake sent the browser back without a code: {back}")
            call_back(client, back)
            return str(vehicle["id"]), code

        with browsers, ThreadPoolExecutor(max_workers=8) as pool:
            for vehicle_id, code in pool.map(one, range(n)):
                self.vehicles.append(vehicle_id)
                self.codes.append(code)

    def enqueue_all(self) -> None:
        validate = REGISTRY[Step.validate].name
        with self.celery.connection_for_write() as conn, conn.Producer() as producer:
            for vehicle_id in self.vehicles:
                self.celery.send_task(validate, args=[vehicle_id], producer=producer)

    def count(self, *statuses: str) -> int:
        with self.db.session() as session:
            return int(
                session.execute(
                    select(func.count())
                    .select_from(ConnectedVehicle)
                    .where(
                        ConnectedVehicle.id.in_(self.vehicles),
                        ConnectedVehicle.status.in_(statuses),
                    )
                ).scalar_one()
            )

    def wait_until_terminal(self, timeout: float) -> float:
        """Seconds until no vehicle of the run is pending (or the timeout)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.count("pending") == 0:
                break
            time.sleep(0.25)
        return time.monotonic() - start

    def report(self, fault: str, seconds: float) -> Report:
        with self.db.session() as session:
            statuses = dict(
                session.execute(
                    select(ConnectedVehicle.status, func.count())
                    .where(ConnectedVehicle.id.in_(self.vehicles))
                    .group_by(ConnectedVehicle.status)
                ).all()
            )
            per_event = session.execute(
                select(OutboxEvent.vehicle_id, OutboxEvent.type, func.count())
                .where(OutboxEvent.vehicle_id.in_(self.vehicles))
                .group_by(OutboxEvent.vehicle_id, OutboxEvent.type)
            ).all()
            transitions = Counter(
                v
                for v, t, n in per_event
                for _ in range(n)
                if t in ("connected_vehicle.authorized", "connected_vehicle.failed")
            )
            failures = {
                str(code): n
                for code, n in session.execute(
                    select(ConnectedVehicle.failure_code, func.count())
                    .where(
                        ConnectedVehicle.id.in_(self.vehicles),
                        ConnectedVehicle.status == "failed",
                    )
                    .group_by(ConnectedVehicle.failure_code)
                ).all()
            }
            retries = session.execute(
                select(func.coalesce(func.sum(ConnectedVehicle.attempts), 0)).where(
                    ConnectedVehicle.id.in_(self.vehicles)
                )
            ).scalar_one()
        terminal = sum(n for s, n in statuses.items() if s != "pending")
        exchanges = self.smartcar.fake.exchanges
        attempts = self.smartcar.fake.code_attempts
        return Report(
            fault=fault,
            started=len(self.vehicles),
            terminal=terminal,
            authorized=statuses.get("authorized", 0),
            lost=len(self.vehicles) - terminal,
            duplicated_transitions=sum(1 for n in transitions.values() if n > 1),
            duplicated_events=sum(1 for _, _, n in per_event if n > 1),
            double_exchanges=sum(1 for code in self.codes if exchanges[code] > 1),
            codes_sent_twice=sum(1 for code in self.codes if attempts[code] > 1),
            provider_retries=int(retries),
            seconds_to_recover=seconds,
            statuses=statuses,
            failures=failures,
        )


# Tries of one hop of a journey that answers 503 (the client or the user asks again).
_ASK_AGAIN = 10


def _outcome(answer: httpx.Response) -> str:
    """`503` (asked to come back), `500` (an internal error), else the status's class; a
    GraphQL INTERNAL_SERVER_ERROR counts as `500` whatever the HTTP status."""
    if answer.status_code in (500, 503) or "INTERNAL_SERVER_ERROR" in answer.text:
        return "503" if answer.status_code == 503 else "500"
    return f"{answer.status_code // 100}xx"


@contextmanager
def cluster(
    db: Database,
    settings: Settings,
    smartcar: FakeServer,
    broker_url: str,
    *,
    workers: int = 2,
    concurrency: int | None = 4,
    pool: str | None = None,
    beat: bool = True,
    web: bool = False,
    **overrides: str,
) -> Iterator[Cluster]:
    """Worker processes (the Procfile's worker line; `concurrency` and `pool` override
    its pool's size and kind, None keeps the line's), beat and web on `broker_url`, with
    settings fit for a fault run: short stall and claim deadlines, a frequent sweep. The
    fault tests keep the pool small (4): at most one code per running task is lost with a
    killed worker."""
    public_url = f"http://127.0.0.1:{free_port()}" if web else settings.public_url
    env = {
        **path_env(),
        "CV_PUBLIC_URL": public_url,
        "CV_BROKER_URL": broker_url,
        "CV_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "CV_SWEEP_INTERVAL_SECONDS": "1",
        "CV_STALL_SECONDS": "4",
        "CV_CLAIM_TIMEOUT_SECONDS": "8",
        "CV_RETRY_MAX_ATTEMPTS": "12",
        "CV_RETRY_BASE_SECONDS": "0.1",
        "CV_RETRY_MAX_SECONDS": "2",
        "CV_PROVIDER_TIMEOUT_SECONDS": "1",
        # Events go through Redis (pub/sub, counters): on RabbitMQ, the run's Redis
        **({} if broker_url.startswith("redis") else {"CV_EVENTS_REDIS_URL": settings.events_url}),
        **overrides,
    }
    register_app(smartcar, settings.callback_url, f"{public_url}/oauth/callback")
    with service(env) as processes:
        c = Cluster(db, settings, smartcar, broker_url, processes, concurrency, pool)
        for _ in range(workers):
            c.start_worker()
        if beat:
            c.start_beat()
        if web:
            c.start_web()
        yield c
