"""The API's own cost: createConnectedVehicle and connectedVehicle at 32 connections beside
a bare enqueue route on the same server setup; and what 200 mutations waiting their
bounded time cost the database and the other requests."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import create_engine, text

from bench.load import LoadResult, Request, hammer, run_load
from bench.record import (
    Figure,
    Results,
    below,
    median,
    ratio_at_least,
    ratio_at_most,
    ratio_below,
)
from bench.stack import CREATE, Stack
from harness import PG_ADMIN_URL

__all__ = ["requests", "waiting"]

GET = "query($id: ID!) { connectedVehicle(id: $id) { id status label } }"
AUTHORIZE = """mutation($input: AuthorizeConnectedVehicleInput!) {
  authorizeConnectedVehicle(input: $input) { id status } }"""


def requests(results: Results, s: Stack, *, connections: int, seconds: float, repeat: int) -> None:
    """No worker runs: what is enqueued stays queued (and is purged at the end)."""
    s.stop_workers()
    bare = s.start_bare()
    headers = {**s.tenant.headers("bench-api"), "content-type": "application/json"}
    created = s.gql(CREATE, headers, input={"vehicle_id": "tesla-model-3", "provider": "Smartcar"})
    vehicle_id = created["data"]["createConnectedVehicle"]["id"]
    create_body = {
        "query": CREATE,
        "variables": {"input": {"vehicle_id": "tesla-model-3", "provider": "Smartcar"}},
    }
    get_body = {"query": GET, "variables": {"id": vehicle_id}}

    def create() -> Request:
        return ("POST", "/graphql", create_body, headers)

    def get() -> Request:
        return ("POST", "/graphql", get_body, headers)

    def enqueue() -> Request:
        return ("POST", "/enqueue", create_body, headers)

    runs: dict[str, list[LoadResult]] = {"create": [], "get": [], "bare": []}
    for _ in range(repeat):  # interleaved, so that each meets the same conditions
        runs["create"].append(run_load(s.web, create, connections=connections, seconds=seconds))
        runs["get"].append(run_load(s.web, get, connections=connections, seconds=seconds))
        runs["bare"].append(run_load(bare, enqueue, connections=connections, seconds=seconds))
    s.purge()

    def rate(name: str) -> float:
        return median([r.rate for r in runs[name]])

    def p(name: str, q: float) -> float:
        return median([r.p(q) for r in runs[name]])

    def errors(name: str) -> str:
        bad = sum(r.errors for r in runs[name])
        first = next((r.first_error for r in runs[name] if r.first_error), "")
        return f"; {bad} errors: {first[:150]}" if bad else ""

    where = f"{connections} connections, {s.web_process_count()} web process(es)"
    for name, op in (("create", "createConnectedVehicle"), ("get", "connectedVehicle")):
        goals = name == "create"  # the goals are the mutation's
        results.add(
            Figure(
                f"{op} req/s",
                rate(name),
                "req/s",
                baseline=rate("bare"),
                goal=ratio_at_least(0.5) if goals else None,
                note=f"baseline: bare enqueue route; {where}{errors(name)}",
                runs=[r.rate for r in runs[name]],
            )
        )
        results.add(Figure(f"{op} p50", p(name, 0.5), "ms", baseline=p("bare", 0.5)))
        results.add(
            Figure(
                f"{op} p99",
                p(name, 0.99),
                "ms",
                baseline=p("bare", 0.99),
                goal=ratio_at_most(2) if goals else None,
            )
        )


def _transactions(database: str) -> int:
    """Commits and rollbacks of `database` so far (pg_stat_database, read afresh)."""
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(
                conn.execute(
                    text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = :db"
                    ),
                    {"db": database},
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def _transactions_per_second(database: str, seconds: float) -> tuple[float, float]:
    """Transactions/s over `seconds`: the mean over the whole window, and the largest
    one-second rate seen in it. (A backend flushes its counters at most once a second,
    and an idle one only after 10 s: one-second rates come in bursts, and only a long
    window's mean is the rate.)"""
    rates: list[float] = []
    start = before = await asyncio.to_thread(_transactions, database)
    began = last = time.monotonic()
    while len(rates) < max(1, round(seconds)):
        await asyncio.sleep(1)
        now_count = await asyncio.to_thread(_transactions, database)
        now = time.monotonic()
        rates.append((now_count - before) / (now - last))
        before, last = now_count, now
    return (before - start) / (last - began), max(rates)


def waiting(results: Results, s: Stack, *, n: int = 200, probes: int = 4) -> None:
    """N vehicles called back with no worker running: each authorizeConnectedVehicle waits
    its bounded time (CV_MUTATION_WAIT_SECONDS, 45 s here). Measured: the database's
    transactions/s (pg_stat_database), the mean from 12 s to 32 s after the mutations
    were sent, nothing else running; then connectedVehicle's p99 at `probes` connections
    from 32 s to 37 s.
    Baselines: the same two, measured idle just before."""
    if not s.db.is_postgres:
        raise RuntimeError("the transaction count is PostgreSQL's (pg_stat_database)")
    s.stop_workers()
    database = s.db.engine.url.database or ""
    journeys = s.journeys(n)
    ids = journeys.ids
    headers = {**s.tenant.headers(journeys.user), "content-type": "application/json"}
    probed = s.journeys(1, user="bench-probe")
    if not probed.ids:
        raise RuntimeError(f"no vehicle to probe: {probed.first_error}")
    probe_id = probed.ids[0]
    probe_headers = {**s.tenant.headers("bench-probe"), "content-type": "application/json"}

    def probe() -> Request:
        return ("POST", "/graphql", {"query": GET, "variables": {"id": probe_id}}, probe_headers)

    async def measure() -> tuple[float, tuple[float, float], LoadResult, LoadResult, list[str]]:
        idle_tx, _ = await _transactions_per_second(database, 5)
        idle = await hammer(s.web, probe, connections=probes, seconds=5)
        async with httpx.AsyncClient(
            base_url=s.web, timeout=120, limits=httpx.Limits(max_connections=n + 10)
        ) as client:

            async def authorize(vehicle_id: str) -> str:
                answer = await client.post(
                    "/graphql",
                    json={"query": AUTHORIZE, "variables": {"input": {"id": vehicle_id}}},
                    headers=headers,
                )
                body = answer.json()
                if body.get("errors"):
                    return str(body["errors"][0].get("extensions", {}).get("code"))
                return str(body["data"]["authorizeConnectedVehicle"]["status"])

            waits = [asyncio.create_task(authorize(v)) for v in ids]
            # past the mutations' own arrival, and the 10 s a backend may hold its counts
            await asyncio.sleep(12)
            busy_tx, busy_max = await _transactions_per_second(database, 20)
            busy = await hammer(s.web, probe, connections=probes, seconds=5, warmup=0)
            answers = await asyncio.gather(*waits)
        return idle_tx, (busy_tx, busy_max), idle, busy, answers

    idle_tx, (busy_tx, busy_max), idle, busy, answers = asyncio.run(measure())
    s.purge()
    outcome = {a: answers.count(a) for a in set(answers)}
    results.add(
        Figure(
            f"DB transactions/s while {len(ids)} authorizeConnectedVehicle wait",
            busy_tx,
            "xact/s",
            baseline=idle_tx,
            goal=below(50, " xact/s"),
            note="pg_stat_database commits+rollbacks, mean from 12 s to 32 s "
            f"after the mutations were sent (max {busy_max:.0f}/s); answers {outcome}",
        )
    )
    results.add(
        Figure(
            f"connectedVehicle p99 while {len(ids)} mutations wait",
            busy.p(0.99),
            "ms",
            baseline=idle.p(0.99),
            goal=ratio_below(2),
            note=f"{probes} connections; {busy.count} requests (idle {idle.count}); "
            f"p50 {busy.p(0.5):.1f} ms vs idle {idle.p(0.5):.1f} ms",
        )
    )
