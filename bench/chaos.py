"""Chaos figures: faults of the fault tests at a larger size, on real processes.

    .venv/bin/python -m bench.chaos [--size 2000] [--faults kill,redis,flap,lost]

`lost` (not run unless asked): 30% of the token answers lost after the fake spent the
code, the journeys over HTTP end to end (the GraphQL API, consent, the web's callback);
every vehicle ends authorized or AUTHORIZATION_INTERRUPTED, no code sent twice.

For each fault: authorizations started, terminal, lost, duplicated transitions and
events, codes exchanged twice, provider retries, and the time from the fault until every
vehicle was terminal. Needs what `make test` needs (PostgreSQL, redis-server); makes and
drops a database of its own; sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack

from harness import (
    Cluster,
    RedisServer,
    Report,
    cluster,
    migrated_database,
    new_secret_key,
    postgres_database,
    redis_server,
    run_until,
    use_environment,
)
from providers.fakes.serve import serve_fake
from providers.fakes.smartcar import FakeSmartcar

LATENCY = 0.02


def kill_a_worker(c: Cluster, size: int) -> Report:
    c.smartcar.fake.latency = LATENCY
    c.put_in_flight(size)
    run_until(lambda: c.count("authorized") >= size // 5, 600, "a fifth authorized")
    c.kill_worker(0)
    return c.report("worker killed", c.wait_until_terminal(1800))


def redis_fault(c: Cluster, broker: RedisServer, size: int) -> Report:
    c.smartcar.fake.latency = LATENCY
    c.put_in_flight(size)
    run_until(lambda: c.count("authorized") >= size // 5, 600, "a fifth authorized")
    broker.restart_empty()
    return c.report("redis restarted empty", c.wait_until_terminal(1800))


def flapping(c: Cluster, size: int) -> Report:
    fake = c.smartcar
    fake.fault("/oauth/token", 503, times=10**9, probability=0.3)
    fake.fault("/v2.0/vehicles/", 0, times=10**9, probability=0.3, delay=1.2)
    fake.fault("/v2.0/vehicles", 429, times=10**9, probability=0.3, retry_after=1)
    start = time.monotonic()
    c.put_in_flight(size)
    c.wait_until_terminal(3600)
    return c.report("provider flapping 30%", time.monotonic() - start)


LOST = "token answers lost 30%"


def lost_token_answers(c: Cluster, size: int) -> Report:
    c.smartcar.fake.latency = LATENCY
    c.smartcar.fault("/oauth/token", 504, times=10**9, probability=0.3, lose_answer=True)
    start = time.monotonic()
    c.put_in_flight_over_http(size)
    c.wait_until_terminal(1800)
    return c.report(LOST, time.monotonic() - start)


FAULTS = {"kill", "redis", "flap", "lost"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2000, help="authorizations per fault")
    parser.add_argument("--faults", default="kill,redis,flap", help="which faults, in order")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="pool size per worker (overrides the Procfile's worker line; 0 keeps it)",
    )
    args = parser.parse_args()
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(faults) - FAULTS
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    reports: list[Report] = []
    with ExitStack() as run:
        url = run.enter_context(postgres_database("cv_chaos"))
        secret = new_secret_key()
        settings = use_environment(CV_DATABASE_URL=url, CV_SECRET_KEY=secret)
        db = migrated_database(url, secret)
        run.callback(db.engine.dispose)
        server = run.enter_context(serve_fake(FakeSmartcar()))
        for name in faults:
            server.fake.reset()
            print(f"-- {name}: {args.size} authorizations ...", flush=True)
            with ExitStack() as stack:
                broker = stack.enter_context(redis_server())
                c = stack.enter_context(
                    cluster(
                        db,
                        settings,
                        server,
                        broker.url,
                        concurrency=args.concurrency or None,
                        # a longer backlog: a step waits longer in the queue before it
                        # counts as stalled
                        CV_STALL_SECONDS="20",
                        CV_RETRY_MAX_ATTEMPTS="30",
                        # the web (for `lost` only): request rates well above what
                        # one user and one address send here
                        web=name == "lost",
                        CV_RATE_CLIENT_PER_MINUTE="1000000",
                        CV_RATE_USER_PER_MINUTE="1000000",
                        CV_RATE_ADDRESS_PER_MINUTE="1000000",
                    )
                )
                if name == "kill":
                    report = kill_a_worker(c, args.size)
                elif name == "redis":
                    report = redis_fault(c, broker, args.size)
                elif name == "lost":
                    report = lost_token_answers(c, args.size)
                else:
                    report = flapping(c, args.size)
            reports.append(report)
            print(report.line(), flush=True)
    print()
    for report in reports:
        print(report.line())
    kept = all(r.lost == 0 and r.duplicated_transitions == 0 for r in reports) and all(
        r.codes_sent_twice == 0 for r in reports if r.fault == LOST
    )
    return 0 if kept else 1


if __name__ == "__main__":
    sys.exit(main())
