"""HTTP load from this process: a fixed number of connections, each sending its next
request as soon as the last one answered (a closed loop), for a fixed time; latencies
of every request after a short warm-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["LoadResult", "Request", "hammer", "percentile", "run_load"]

# method, path, JSON body, headers
Request = tuple[str, str, dict[str, Any] | None, dict[str, str]]


@dataclass
class LoadResult:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        """The q-quantile latency in ms."""
        return percentile(self.latencies, q) * 1000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def failed(response: httpx.Response) -> bool:
    # A GraphQL error is still HTTP 200: look for it without parsing every body.
    return response.status_code >= 400 or b'"errors"' in response.content


async def hammer(
    base_url: str,
    request: Callable[[], Request],
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
) -> LoadResult:
    result = LoadResult()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + seconds

        async def loop() -> None:
            while (now := time.perf_counter()) < stop:
                method, path, body, headers = request()
                response = await client.request(method, path, json=body, headers=headers)
                done = time.perf_counter()
                if now < measure_from:
                    continue
                if failed(response):
                    result.errors += 1
                    result.first_error = result.first_error or response.text[:300]
                    continue
                result.count += 1
                result.latencies.append(done - now)

        await asyncio.gather(*(loop() for _ in range(connections)))
        result.seconds = time.perf_counter() - measure_from
    return result


def run_load(
    base_url: str,
    request: Callable[[], Request],
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
) -> LoadResult:
    return asyncio.run(
        hammer(base_url, request, connections=connections, seconds=seconds, warmup=warmup)
    )
