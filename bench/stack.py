"""What the bench measures, started by the bench: a private redis-server, a PostgreSQL
database of its own, the fake Smartcar in this process (its latency settable, its
in-flight counter readable), the web processes, and worker processes on demand; plus
the user's journey over HTTP and the broker's queue as the bench needs to see it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from sqlalchemy import func, select

from harness import (
    Process,
    Service,
    Tenant,
    celery_client,
    free_port,
    make_tenant,
    migrated_database,
    new_secret_key,
    path_env,
    postgres_database,
    redis_server,
    register_app,
    service,
    use_environment,
    wait_for,
)
from harness.procfile import QUEUES, get_option, procfile_argv
from harness.procs import Browsers
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer, serve_fake
from providers.fakes.smartcar import FakeSmartcar
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle
from workflows.registry import Job

__all__ = ["CREATE", "Journeys", "Stack", "open_stack"]

QUEUE = "cv"  # celeryconfig.STEPS: the queue the bench pauses, fills and drains

CREATE = """mutation($input: CreateConnectedVehicleInput!) {
  createConnectedVehicle(input: $input) { id status authorization_url } }"""


@dataclass
class Journeys:
    """N users' journeys through the HTTP front: created, consented, called back."""

    user: str
    ids: list[str]
    started: int
    called_back: int
    errors: int
    first_error: str
    seconds: float


class Stack:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        broker_url: str,
        smartcar: FakeServer,
        processes: Service,
        web_processes: int | None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.broker_url = broker_url
        self.smartcar = smartcar
        self.service = processes
        self.env = processes.env
        self.web = settings.public_url.rstrip("/")
        self.web_processes = web_processes
        self.tenant: Tenant = make_tenant(db, {"Smartcar": smartcar}, "Bench")
        register_app(smartcar, settings.callback_url)
        self.celery = celery_client(broker_url)
        self.redis = redis.Redis.from_url(broker_url)
        self.ops: Process | None = None  # the Procfile's `ops`, beside its `worker`
        self.steps_nodes: set[str] = set()  # the node names of the steps' workers

    # -- processes ---------------------------------------------------------------------

    def start_web(self) -> None:
        self.service.start_web(processes=self.web_processes)

    def web_process_count(self) -> int:
        web = next(p for p in self.service.others if p.name == "web")
        return int(get_option(web.argv, ("--workers",)) or 1)

    def start_worker(self, *, pool: str | None = None, concurrency: int | None = None) -> Process:
        """The Procfile's `worker` on its own queue (the steps), with its `ops` beside it
        (deliveries, housekeeping: the relay), as the Procfile runs them. With `pool` (the
        baseline's prefork), one worker serves every queue alone."""
        if pool is None and self.ops is None:
            self.ops = self.service.spawn("ops", procfile_argv("ops", self.env))
            self.service.others.append(self.ops)  # stopped with the stack, at the latest
        names = self._nodes()
        proc = self.service.start_worker(
            pool=pool, concurrency=concurrency, queues=None if pool is None else QUEUES
        )

        def up() -> bool:
            if not proc.alive():
                raise RuntimeError(f"the worker exited:\n{proc.output()}")
            nodes = self._nodes()
            steps = {n for n in nodes - names if not n.startswith("ops-")}
            ready = bool(steps) and (self.ops is None or any(n.startswith("ops-") for n in nodes))
            if ready:
                self.steps_nodes.update(steps)
            return ready

        wait_for(up, "the worker", 90)
        return proc

    def _nodes(self) -> set[str]:
        return {name for reply in self.celery.control.ping(timeout=0.5) for name in reply}

    def stop_workers(self) -> None:
        if self.ops is not None:
            self.ops.terminate()  # warm shutdowns at once: ops with the workers
        self.service.stop_workers()
        self.steps_nodes.clear()
        if self.ops is not None:
            self.ops.stop()
            self.service.others.remove(self.ops)
            self.ops = None

    def start_bare(self) -> str:
        """The bare enqueue route (bench.bare) on as many uvicorn processes as the web."""
        port = free_port()
        argv = [
            "uvicorn",
            "bench.bare:app",
            "--host",
            "127.0.0.1",
            f"--port={port}",
            f"--workers={self.web_process_count()}",
        ]
        self.service.others.append(self.service.spawn("bare", argv))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, "the bare route", 60)
        return url

    # -- the broker's queue ------------------------------------------------------------

    def pause(self) -> None:
        """The steps' workers stop taking new messages (Celery's remote control)."""
        self._control("cancel_consumer")

    def resume(self) -> None:
        self._control("add_consumer")

    def _control(self, command: str) -> None:
        # Only to the steps' workers (`ops` would take the steps' queue on add_consumer);
        # `limit`: return at the last reply, not at the timeout.
        nodes = sorted(self.steps_nodes)
        replies = getattr(self.celery.control, command)(
            QUEUE, destination=nodes, reply=True, timeout=5, limit=len(nodes)
        )
        if len(replies) < len(nodes):
            raise RuntimeError(f"{command}: not every worker answered: {replies}")

    def depth(self) -> int:
        """Messages queued or delivered and not yet acked (tasks ack late: after running)."""
        return int(self.redis.llen(QUEUE)) + int(self.redis.hlen("unacked"))

    def held(self) -> str:
        """What the depth counts, by task name: for an error message."""
        names: dict[str, int] = {}
        for raw in self.redis.hvals("unacked"):
            try:
                name = json.loads(raw)[0]["headers"]["task"]
            except (ValueError, KeyError, IndexError, TypeError):
                name = "?"
            names[name] = names.get(name, 0) + 1
        return f"queued {int(self.redis.llen(QUEUE))}, unacked {names}"

    def purge(self) -> None:
        """Forget every queued task, of every queue (only with no worker running)."""
        self.redis.delete(*QUEUES, "unacked", "unacked_index")

    def send_noops(self, n: int) -> None:
        with self.celery.connection_for_write() as conn, conn.Producer() as producer:
            for _ in range(n):
                self.celery.send_task(Job.noop, producer=producer)

    # -- the user's journey ------------------------------------------------------------

    def journeys(self, n: int, *, threads: int = 32, user: str | None = None) -> Journeys:
        """N journeys over HTTP: createConnectedVehicle at the API, consent at the fake,
        the browser back at the OAuth callback (which enqueues validation)."""
        user = user or f"bench-{uuid.uuid4().hex[:8]}"
        headers = self.tenant.headers(user)
        errors: list[str] = []
        ids: list[str] = []
        browsers = Browsers(timeout=60)

        def one(_: int) -> bool:
            client = browsers.get()
            try:
                body = client.post(
                    f"{self.web}/graphql",
                    json={
                        "query": CREATE,
                        "variables": {
                            "input": {"vehicle_id": "tesla-model-3", "provider": "Smartcar"}
                        },
                    },
                    headers=headers,
                ).json()
                vehicle = body["data"]["createConnectedVehicle"]
                ids.append(vehicle["id"])
                back = consent(vehicle["authorization_url"], client=client)
                answer = client.get(back)
                if answer.status_code >= 400:
                    raise RuntimeError(f"callback answered {answer.status_code}")
                return True
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                return False

        start = time.monotonic()
        with browsers, ThreadPoolExecutor(max_workers=threads) as pool:
            done = sum(pool.map(one, range(n)))
        return Journeys(
            user, ids, n, done, len(errors), errors[0] if errors else "", time.monotonic() - start
        )

    def statuses(self, user: str) -> dict[str, int]:
        with self.db.session() as session:
            rows = session.execute(
                select(ConnectedVehicle.status, func.count())
                .where(
                    ConnectedVehicle.client_id == self.tenant.client_id,
                    ConnectedVehicle.user_id == user,
                )
                .group_by(ConnectedVehicle.status)
            ).all()
        return {str(s): int(n) for s, n in rows}

    def wait_settled(self, user: str, n: int, timeout: float) -> tuple[int, float]:
        """Poll until `n` of the user's vehicles are no longer pending (or `timeout`);
        the number authorized and the seconds it took."""
        start = time.monotonic()
        while True:
            got = self.statuses(user)
            settled = sum(v for k, v in got.items() if k != "pending")
            elapsed = time.monotonic() - start
            if settled >= n or elapsed > timeout:
                return got.get("authorized", 0), elapsed
            time.sleep(0.1)

    def gql(self, query: str, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.web}/graphql",
            json={"query": query, "variables": variables},
            headers=headers,
            timeout=120,
        )
        body: dict[str, Any] = answer.json()
        return body


def environment(database_url: str, broker_url: str, secret: str, web_port: int) -> dict[str, str]:
    return {
        "CV_DATABASE_URL": database_url,
        "CV_BROKER_URL": broker_url,
        "CV_SECRET_KEY": secret,
        "CV_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        # long enough for the bench to watch 200 mutations wait
        "CV_MUTATION_WAIT_SECONDS": "45",
    }


@contextmanager
def open_stack(*, web_processes: int | None, sqlite_path: str | None = None) -> Iterator[Stack]:
    """Everything up, the web answering; all of it stopped and dropped on exit. With
    `sqlite_path`, the database is that SQLite file instead of PostgreSQL."""
    with ExitStack() as stack:
        broker = stack.enter_context(redis_server())
        if sqlite_path is None:
            url = stack.enter_context(postgres_database("cv_bench"))
        else:
            url = f"sqlite:///{sqlite_path}"
        secret = new_secret_key()
        values = environment(url, broker.url, secret, free_port())
        settings = use_environment(**values)
        db = migrated_database(url, secret)
        stack.callback(db.engine.dispose)
        smartcar = stack.enter_context(serve_fake(FakeSmartcar()))
        processes = stack.enter_context(service({**path_env(), **values}))
        s = Stack(settings, db, broker.url, smartcar, processes, web_processes)
        stack.callback(s.redis.close)
        s.start_web()
        yield s
