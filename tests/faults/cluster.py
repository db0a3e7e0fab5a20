"""A small cluster of the service's real processes for fault runs: worker processes and
beat on a broker of the run's own, PostgreSQL, and the fake Smartcar over loopback. Used
by the fault tests (bounded sizes) and by `bench/chaos` (larger ones).

A run puts N authorizations in flight (each vehicle created, its user's consent given at
the fake, the callback received), lets a fault happen, waits for every vehicle to end,
and reports from the database and the fake's counters.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

from celery import Celery
from sqlalchemy import func, select

from providers.names import Provider
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, OutboxEvent
from tests.fixtures import APP_ID, APP_SECRET, FakeServer, Tenant, consent, make_tenant
from tests.processes import BIN, ROOT
from workflows.authorization import create_connected_vehicle, receive_callback
from workflows.clients import Principal

__all__ = ["Cluster", "RedisServer", "Report", "cluster", "redis_server"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Report:
    """What a fault run shows: each number but `started`, `terminal` and the times should
    be 0 for the service to keep its promises."""

    fault: str
    started: int
    terminal: int = 0
    authorized: int = 0
    lost: int = 0
    duplicated_transitions: int = 0
    duplicated_events: int = 0
    double_exchanges: int = 0
    provider_retries: int = 0
    seconds_to_recover: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.fault:<24} started {self.started:>5}  terminal {self.terminal:>5}  "
            f"lost {self.lost}  duplicated transitions {self.duplicated_transitions}  "
            f"duplicated events {self.duplicated_events}  double exchanges "
            f"{self.double_exchanges}  retries {self.provider_retries:>5}  "
            f"recovered in {self.seconds_to_recover:.1f}s"
            + (f"  failed {self.failures}" if self.failures else "")
        )


class RedisServer:
    """A private redis-server on a port of its own, that a fault can kill and restart."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cv-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: nothing saved, every queued message gone
            self.proc.wait()

    def restart_empty(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


class Cluster:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        smartcar: FakeServer,
        broker_url: str,
        env: dict[str, str],
        workdir: Path,
    ) -> None:
        self.db = db
        self.settings = settings
        self.smartcar = smartcar
        self.broker_url = broker_url
        self.env = env
        self.workdir = workdir
        self._logs: list[IO[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []
        self.tenant: Tenant = make_tenant(db, {"Smartcar": smartcar}, "Chaos")
        import celeryconfig

        self.celery = Celery(broker=broker_url)
        self.celery.config_from_object("celeryconfig")
        self.celery.conf.update(broker_url=broker_url, **celeryconfig.broker_settings(broker_url))
        self.vehicles: list[str] = []
        self.codes: list[str] = []

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, concurrency: int = 4) -> subprocess.Popen[bytes]:
        n = len(self.workers) + 1
        proc = self._spawn(
            f"worker{n}",
            [
                str(BIN / "celery"),
                "-A",
                "workers.app",
                "worker",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "-n",
                f"chaos{n}-{uuid.uuid4().hex[:6]}@%h",
            ],
        )
        self.workers.append(proc)
        return proc

    def start_beat(self) -> None:
        self.others.append(
            self._spawn(
                "beat",
                [
                    str(BIN / "celery"),
                    "-A",
                    "workers.app",
                    "beat",
                    "--loglevel=INFO",
                    f"--schedule={self.workdir / 'beat-schedule'}",
                ],
            )
        )

    def start_web(self) -> str:
        """The API in a process of its own, at CV_PUBLIC_URL; returns its base URL once it
        answers. (Workers must know that URL too: start them after `cluster` set it.)"""
        import httpx

        url = self.env["CV_PUBLIC_URL"]
        self.others.append(
            self._spawn(
                "web",
                [
                    str(BIN / "uvicorn"),
                    "--factory",
                    "api.app:create_app",
                    "--port",
                    url.rsplit(":", 1)[1],
                ],
            )
        )

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        run_until(ready, 30, "the web process")
        return url

    def kill_worker(self, index: int = 0) -> None:
        """kill -9 the worker and its pool processes: the machine died."""
        proc = self.workers[index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.workers + self.others:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers + self.others:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        return "\n".join(
            f"----- {p.name} -----\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )

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

    def enqueue_all(self) -> None:
        with self.celery.connection_for_write() as conn, conn.Producer() as producer:
            for vehicle_id in self.vehicles:
                self.celery.send_task(
                    "cv.validate_authorization", args=[vehicle_id], producer=producer
                )

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
        return Report(
            fault=fault,
            started=len(self.vehicles),
            terminal=terminal,
            authorized=statuses.get("authorized", 0),
            lost=len(self.vehicles) - terminal,
            duplicated_transitions=sum(1 for n in transitions.values() if n > 1),
            duplicated_events=sum(1 for _, _, n in per_event if n > 1),
            double_exchanges=sum(1 for code in self.codes if exchanges[code] > 1),
            provider_retries=int(retries),
            seconds_to_recover=seconds,
            statuses=statuses,
            failures=failures,
        )


@contextmanager
def cluster(
    db: Database,
    settings: Settings,
    smartcar: FakeServer,
    broker_url: str,
    *,
    workers: int = 2,
    concurrency: int = 4,
    beat: bool = True,
    web: bool = False,
    **overrides: str,
) -> Iterator[Cluster]:
    """Worker processes (and beat, and web) on `broker_url`, with settings fit for a fault
    run: short stall and claim deadlines, a frequent sweep."""
    public_url = f"http://127.0.0.1:{_free_port()}" if web else settings.public_url
    env = {
        **os.environ,
        "CV_PUBLIC_URL": public_url,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CV_BROKER_URL": broker_url,
        "CV_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "CV_SWEEP_INTERVAL_SECONDS": "1",
        "CV_STALL_SECONDS": "4",
        "CV_CLAIM_TIMEOUT_SECONDS": "8",
        "CV_RETRY_MAX_ATTEMPTS": "12",
        "CV_RETRY_BASE_SECONDS": "0.1",
        "CV_RETRY_MAX_SECONDS": "2",
        "CV_PROVIDER_TIMEOUT_SECONDS": "1",
        **overrides,
    }
    smartcar.fake.apps[APP_ID] = {
        "client_secret": APP_SECRET,
        "redirect_uris": [settings.callback_url, f"{public_url}/oauth/callback"],
    }
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cv-chaos-")))
        c = Cluster(db, settings, smartcar, broker_url, env, workdir)
        stack.callback(c.stop)
        for _ in range(workers):
            c.start_worker(concurrency)
        if beat:
            c.start_beat()
        if web:
            c.start_web()
        try:
            yield c
        except BaseException:
            print(c.logs())
            raise


def run_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s")
