"""`make bench`: the project's own benchmark. It starts what it measures (a private
redis-server, a PostgreSQL database of its own, the fake Smartcar in this process with a
settable latency, the Procfile's web, worker and ops processes), takes each figure beside its
baseline from the same run, prints the ratio and the goal, and writes var/bench.json
(a list of {name, value, unit, baseline, ratio, goal, met}). Traffic goes to 127.0.0.1
only; everything it starts it stops, and its database is dropped.

Parts (--only picks some):
  e2e       end-to-end authorizations/s over HTTP (create, consent at the fake, callback,
            until authorized in the database), 0 ms provider latency, vs the no-op drain
            of the same worker setup
  latency   validations/s at 200 ms per provider call, Procfile worker vs prefork 2;
            provider calls in flight per worker process (median, peak)
  api       createConnectedVehicle and connectedVehicle req/s, p50, p99 at 32
            connections vs a bare enqueue route on the same server setup
  waiting   200 authorizeConnectedVehicle waiting their bounded time: database
            transactions/s, and connectedVehicle's p99 meanwhile, vs idle
  ops       e2e with each step attempt recorded vs not (CV_STEP_ATTEMPTS); new users'
            authorizations/s beside a bulk re-drive of 10,000 failed vehicles vs alone
  scale     connectedVehicleList (page 1, page 50, by cursor), the console's Vehicles
            view (failed, one code, one provider), a sweep pass, the relay of a 10k-event
            backlog, at 10k and larger sizes, vs 10k
  sqlite    (full mode) the e2e figure again on SQLite

Quick mode (the default) takes a few minutes on 2 cores; --full adds 1M rows, the
SQLite e2e and 3 e2e runs. Needs what `make test` needs: PostgreSQL
(CV_TEST_POSTGRES_URL, default the local postgres superuser) and redis-server.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.record import Figure, Results
from harness import ROOT, procfile_argv

PARTS = ("api", "waiting", "e2e", "latency", "ops", "scale", "sqlite")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--full", action="store_true", help="full mode: 1M rows, SQLite e2e, 3 e2e runs")
    p.add_argument("--n", type=int, default=500, help="e2e authorizations per run (500)")
    p.add_argument("--noops", type=int, default=2000, help="no-op tasks per drain (2000)")
    p.add_argument(
        "--n-latency", type=int, default=300, help="validations at 200 ms, Procfile worker (300)"
    )
    p.add_argument(
        "--n-prefork", type=int, default=40, help="validations at 200 ms, prefork 2 (40)"
    )
    p.add_argument("--waiting", type=int, default=200, help="waiting mutations (200)")
    p.add_argument(
        "--rows",
        type=int,
        default=None,
        help="largest fleet for the scale part (100000; --full: 1000000)",
    )
    p.add_argument("--base-rows", type=int, default=10_000, help="the scale part's baseline size")
    p.add_argument("--connections", type=int, default=32, help="connections of the api part")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per api load run (5)")
    p.add_argument("--repeat", type=int, default=3, help="runs of the cheap figures (3)")
    p.add_argument(
        "--e2e-runs", type=int, default=None, help="runs of the e2e figure (1; --full: 3)"
    )
    p.add_argument(
        "--web-processes",
        type=int,
        default=None,
        help="uvicorn processes of web and of the bare route (default: the Procfile's)",
    )
    p.add_argument("--only", default=None, help=f"comma-separated parts of {','.join(PARTS)}")
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench.json", help="JSON output")
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 1_000_000 if args.full else 100_000
    if args.e2e_runs is None:
        args.e2e_runs = 3 if args.full else 1
    default = set(PARTS) - ({"sqlite"} if not (args.full or args.rows >= 1_000_000) else set())
    args.parts = [x for x in PARTS if x in (set(args.only.split(",")) if args.only else default)]
    unknown = set(args.only.split(",")) - set(PARTS) if args.only else set()
    if unknown:
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    args.sizes = sorted({args.base_rows, *([100_000] if args.rows > 100_000 else []), args.rows})
    return args


def conditions(args: argparse.Namespace) -> dict[str, object]:
    env = dict(os.environ)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "worker": " ".join(procfile_argv("worker", env)),
        "web": " ".join(procfile_argv("web", env)),
        "web_processes": args.web_processes,
        "mode": "full" if args.full else "quick",
        "n": args.n,
        "sizes": args.sizes,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Imported here: the stack sets the run's environment before the service reads it.
    from bench import throughput
    from bench.stack import open_stack

    results = Results(len(args.parts))
    started = time.monotonic()
    pg_parts = [x for x in args.parts if x != "sqlite"]
    if pg_parts:
        print("starting redis-server, a PostgreSQL database, the fakes, web ...", flush=True)
        try:
            run_parts(args, results, pg_parts)
        except Exception as exc:  # the stack itself: record it, write what we have
            error = f"{type(exc).__name__}: {exc}"[:500]
            results.add(Figure("setup (PostgreSQL)", None, "", error=error))
    if "sqlite" in args.parts:
        with (
            results.part("sqlite"),
            tempfile.TemporaryDirectory(prefix="cv-bench-") as tmp,
            open_stack(web_processes=args.web_processes, sqlite_path=f"{tmp}/cv.sqlite3") as s,
        ):
            throughput.e2e(
                results, s, n=args.n, noops=args.noops, repeat=args.e2e_runs, label="SQLite"
            )
    print(f"\n== figures ({time.monotonic() - started:.0f}s)\n{results.table()}")
    results.write(args.out, conditions(args))
    print(f"\nwritten to {args.out}")
    return 0


def run_parts(args: argparse.Namespace, results: Results, parts: list[str]) -> None:
    """The PostgreSQL parts on one stack, in order; each part's failure is its own."""
    from bench import front, operations, scale, throughput
    from bench.stack import open_stack

    with open_stack(web_processes=args.web_processes) as s:
        for part in parts:
            with results.part(part):
                if part == "api":
                    front.requests(
                        results,
                        s,
                        connections=args.connections,
                        seconds=args.seconds,
                        repeat=args.repeat,
                    )
                elif part == "waiting":
                    front.waiting(results, s, n=args.waiting)
                elif part == "e2e":
                    throughput.e2e(
                        results,
                        s,
                        n=args.n,
                        noops=args.noops,
                        repeat=args.e2e_runs,
                        label="PostgreSQL",
                    )
                elif part == "latency":
                    throughput.latency(results, s, n=args.n_latency, n_baseline=args.n_prefork)
                elif part == "ops":
                    operations.attempts_cost(results, s, n=args.n, repeat=max(2, args.e2e_runs))
                    operations.redrive_beside(
                        results, s, n=args.n, failed=10_000, repeat=args.e2e_runs
                    )
                elif part == "scale":
                    s.stop_workers()
                    scale.at_sizes(results, s, sizes=args.sizes, repeat=args.repeat)


if __name__ == "__main__":
    sys.exit(main())
