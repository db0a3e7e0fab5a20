"""Chaos figures: faults 1 to 3 of the fault tests at a larger size, on real processes.

    .venv/bin/python -m bench.chaos [--size 2000] [--faults kill,redis,flap]

For each fault: authorizations started, terminal, lost, duplicated transitions and
events, codes exchanged twice, provider retries, and the time from the fault until every
vehicle was terminal. Needs what `make test` needs (PostgreSQL, redis-server); makes and
drops a database of its own; sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import ExitStack

from providers.fakes.serve import serve_in_thread
from providers.fakes.smartcar import FakeSmartcar
from settings import get_settings

warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")

# The test settings (a database and Redis db of this run's own) are set on import.
from tests import conftest as run_env
from tests.faults.cluster import (
    Cluster,
    RedisServer,
    Report,
    cluster,
    redis_server,
    run_until,
)
from tests.fixtures import FakeServer

LATENCY = 0.02


def kill_a_worker(c: Cluster, size: int) -> Report:
    c.smartcar.fake.latency = LATENCY
    c.put_in_flight(size)
    run_until(lambda: c.count("authorized") >= size // 5, 600, "a fifth authorized")
    c.kill_worker(0)
    return c.report("worker killed", c.wait_until_terminal(1800))


def flapping(c: Cluster, size: int) -> Report:
    fake = c.smartcar
    fake.fault("/oauth/token", 503, times=10**9, probability=0.3)
    fake.fault("/v2.0/vehicles/", 0, times=10**9, probability=0.3, delay=1.2)
    fake.fault("/v2.0/vehicles", 429, times=10**9, probability=0.3, retry_after=1)
    start = time.monotonic()
    c.put_in_flight(size)
    c.wait_until_terminal(3600)
    return c.report("provider flapping 30%", time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2000, help="authorizations per fault")
    parser.add_argument("--faults", default="kill,redis,flap", help="which faults, in order")
    parser.add_argument("--concurrency", type=int, default=8, help="pool processes per worker")
    args = parser.parse_args()
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(faults) - {"kill", "redis", "flap"}
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    settings = get_settings()
    run_env._admin_execute(f'CREATE DATABASE "{run_env.DB_NAME}"')
    reports: list[Report] = []
    try:
        db = run_env.migrated_database(run_env.PG_URL)
        fake = FakeSmartcar()
        with serve_in_thread(fake.app()) as url:
            server = FakeServer(url, fake)
            for name in faults:
                fake.reset()
                print(f"-- {name}: {args.size} authorizations ...", flush=True)
                with ExitStack() as stack:
                    broker = stack.enter_context(redis_server())
                    c = stack.enter_context(
                        cluster(
                            db,
                            settings,
                            server,
                            broker.url,
                            concurrency=args.concurrency,
                            # a longer backlog: a step waits longer in the queue before it
                            # counts as stalled
                            CV_STALL_SECONDS="20",
                            CV_RETRY_MAX_ATTEMPTS="30",
                        )
                    )
                    if name == "kill":
                        report = kill_a_worker(c, args.size)
                    elif name == "redis":
                        report = redis_fault(c, broker, args.size)
                    else:
                        report = flapping(c, args.size)
                reports.append(report)
                print(report.line(), flush=True)
        db.engine.dispose()
    finally:
        run_env._admin_execute(f'DROP DATABASE IF EXISTS "{run_env.DB_NAME}" WITH (FORCE)')
    print()
    for report in reports:
        print(report.line())
    return 0 if all(r.lost == 0 and r.duplicated_transitions == 0 for r in reports) else 1


def redis_fault(c: Cluster, broker: RedisServer, size: int) -> Report:
    c.smartcar.fake.latency = LATENCY
    c.put_in_flight(size)
    run_until(lambda: c.count("authorized") >= size // 5, 600, "a fifth authorized")
    broker.restart_empty()
    return c.report("redis restarted empty", c.wait_until_terminal(1800))


if __name__ == "__main__":
    sys.exit(main())
