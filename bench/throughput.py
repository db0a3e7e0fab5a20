"""Throughput of the worker setup: end-to-end authorizations per second beside the no-op
drain of the same workers, and the validation rate at 200 ms per provider call beside a
prefork-2 worker, with the provider calls in flight per worker process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bench.record import Figure, Results, at_least, median, ratio_at_least
from bench.stack import Stack

__all__ = ["e2e", "latency", "noop_drain"]


def noop_drain(s: Stack, n: int, timeout: float = 120) -> float:
    """Tasks/s: N no-op tasks queued while the workers are paused, then drained."""
    s.pause()
    s.send_noops(n)
    if s.depth() < 0.9 * n:  # a worker may take the message it was waiting for
        raise RuntimeError(f"the workers did not pause: {s.depth()} of {n} tasks queued")
    s.resume()
    start = time.monotonic()
    while s.depth() > 0:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{s.depth()} no-op tasks left after {timeout}s ({s.held()})")
        time.sleep(0.005)
    return n / (time.monotonic() - start)


def e2e_rate(s: Stack, n: int, timeout: float) -> tuple[float, str]:
    """Authorizations/s over HTTP: from the first create to the last vehicle settled."""
    start = time.monotonic()
    journeys = s.journeys(n)
    if journeys.called_back == 0:
        raise RuntimeError(f"no journey reached the callback: {journeys.first_error}")
    authorized, _ = s.wait_settled(journeys.user, journeys.called_back, timeout)
    elapsed = time.monotonic() - start
    note = f"{authorized}/{n} authorized"
    if journeys.errors:
        note += f", {journeys.errors} journeys failed ({journeys.first_error[:120]})"
    return authorized / elapsed, note


def e2e(results: Results, s: Stack, *, n: int, noops: int, repeat: int, label: str) -> None:
    """e2e authorizations/s (0 ms provider latency) vs the no-op drain, Procfile worker."""
    s.smartcar.fake.latency = 0.0
    if not s.service.workers:
        s.start_worker()
    drains = [noop_drain(s, noops) for _ in range(3)]
    runs: list[float] = []
    notes: list[str] = []
    for _ in range(repeat):
        rate, note = e2e_rate(s, n, timeout=max(120.0, n / 2))
        runs.append(rate)
        notes.append(note)
    results.add(
        Figure(
            f"e2e authorizations/s, N={n}, 0 ms, {label}",
            median(runs),
            "/s",
            baseline=median(drains),
            goal=ratio_at_least(0.2),
            note=f"baseline: no-op drain of {noops}; " + "; ".join(notes),
            runs=runs,
        )
    )


@dataclass
class Drain:
    rate: float
    authorized: int
    in_flight: list[int]


def staged_drain(s: Stack, n: int, delay: float, timeout: float) -> Drain:
    """N journeys staged while the workers are paused (at 0 ms, so that staging is quick),
    then the fake's latency set to `delay` and the backlog of validations drained;
    the fake's calls in flight sampled every 20 ms meanwhile (only workers call it then)."""
    s.smartcar.fake.latency = 0.0
    s.pause()
    journeys = s.journeys(n)
    if journeys.called_back == 0:
        raise RuntimeError(f"no journey reached the callback: {journeys.first_error}")
    if s.depth() < 0.9 * journeys.called_back:
        raise RuntimeError(
            f"the workers did not pause: {s.depth()} of {journeys.called_back} tasks queued"
        )
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            samples.append(int(s.smartcar.fake.in_flight))

    s.smartcar.fake.latency = delay
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    s.resume()
    try:
        authorized, seconds = s.wait_settled(journeys.user, journeys.called_back, timeout)
    finally:
        stop.set()
        sampler.join()
        s.smartcar.fake.latency = 0.0
    return Drain(authorized / seconds, authorized, samples)


def latency(results: Results, s: Stack, *, n: int, n_baseline: int, delay: float = 0.2) -> None:
    """Validations/s at `delay` per provider call: the Procfile worker vs prefork 2; and
    the provider calls in flight per worker process."""
    if not s.service.workers:
        s.start_worker()
    processes = s.service.worker_processes()
    ours = staged_drain(s, n, delay, timeout=max(120.0, n / 2))
    s.stop_workers()
    s.start_worker(pool="prefork", concurrency=2)
    try:
        naive = staged_drain(s, n_baseline, delay, timeout=max(60.0, n_baseline * 2.0))
    finally:
        s.stop_workers()
    ms = int(delay * 1000)
    results.add(
        Figure(
            f"authorizations/s at {ms} ms per provider call, N={n}",
            ours.rate,
            "/s",
            baseline=naive.rate,
            goal=ratio_at_least(40),
            note=f"baseline: prefork 2, N={n_baseline}; {ours.authorized}/{n} authorized",
        )
    )
    per_process = [x / processes for x in ours.in_flight] or [0.0]
    results.add(
        Figure(
            f"provider calls in flight per worker process at {ms} ms (median)",
            median(per_process),
            "calls",
            goal=at_least(100),
            note=f"{processes} worker process(es), {len(ours.in_flight)} samples, every 20 ms",
        )
    )
    results.add(
        Figure(
            f"provider calls in flight per worker process at {ms} ms (peak)",
            max(per_process),
            "calls",
            baseline=max(naive.in_flight or [0]) / 2,
            note="baseline: prefork 2, per process",
        )
    )
