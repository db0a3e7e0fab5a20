"""Every Prometheus metric of the service, defined once, with labels of small fixed sets.

A room of its own, beside ``settings.py``: the web (requests), the workers (steps,
webhook deliveries, sweeps), the workflow's after-commit hook (authorizations) and the
provider adapters (calls) all record here, and imports point one way (``providers``
may not import ``workers`` or ``api``). This module imports only prometheus-client and
the settings.

No label ever carries what a caller sends (an id, a URL, a document): each value is
taken from a fixed set, and anything else is folded into ``other`` (:func:`fold`).
Callers pass values already known to be in their set (a step's name from the
registry, a provider's endpoint template); the sets that are this module's own are
below.

**Several processes.** With ``CV_METRICS_DIR`` set, every process of this host (the
web's uvicorn processes, the Celery workers) writes its counters into files there
(prometheus-client's multiprocess mode) and the web's ``/metrics`` adds them up;
:func:`start` (each process's start-up) removes the files of processes no longer
running, and :func:`stop` marks this one dead. Unset: each process counts in memory,
and the web's ``/metrics`` shows the web's own.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
from collections.abc import Iterable

from settings import get_settings

_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
# Set before prometheus-client is imported: it picks its storage at import.
_dir = get_settings().metrics_dir
if _dir:
    os.makedirs(_dir, exist_ok=True)
    os.environ[_MULTIPROC] = _dir

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402
from prometheus_client.registry import REGISTRY, Collector  # noqa: E402

__all__ = [
    "AUTHORIZATIONS",
    "OTHER",
    "PROVIDER_CALLS",
    "PROVIDER_CALL_SECONDS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "STARTED",
    "STEP_ATTEMPTS",
    "STEP_OUTCOMES",
    "STEP_SECONDS",
    "SUBSCRIPTIONS",
    "SUBSCRIPTIONS_OPEN",
    "SWEEPS",
    "SWEEP_ACTIONS",
    "SWEEP_ACTION_NAMES",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_OUTCOMES",
    "exposition",
    "fold",
    "http_class",
    "start",
    "status_label",
    "stop",
]

OTHER = "other"

# Latencies: requests and provider calls (seconds, up to a provider's timeout), and
# steps (a step makes several calls and may wait out a database; its hard limit 150 s).
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 150.0)

REQUESTS = Counter(
    "cv_requests",
    "HTTP requests to the web, by GraphQL root field or route, and outcome",
    ["operation", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "cv_request_duration_seconds",
    "Time to answer an HTTP request, by GraphQL root field or route",
    ["operation"],
    buckets=_CALL_BUCKETS,
)
STARTED = "started"  # a subscription's outcome, beside the error codes
SUBSCRIPTIONS = Counter(
    "cv_subscriptions",
    "GraphQL subscriptions over WebSocket past authentication, by outcome: started, or "
    "the error code that ended one",
    ["outcome"],
)
SUBSCRIPTIONS_OPEN = Gauge(
    "cv_subscriptions_open",
    "GraphQL subscriptions running now (over the live processes)",
    multiprocess_mode="livesum",
)
AUTHORIZATIONS = Counter(
    "cv_authorizations",
    "Vehicles that became authorized or failed, by provider and outcome",
    ["provider", "outcome"],
)
STEP_OUTCOMES = ("success", "retry", "failed", "error")
STEP_ATTEMPTS = Counter(
    "cv_step_attempts",
    "Runs of workflow steps (one per attempt), by step and outcome",
    ["step", "outcome"],
)
STEP_SECONDS = Histogram(
    "cv_step_duration_seconds",
    "Time one attempt of a workflow step took, by step",
    ["step"],
    buckets=_STEP_BUCKETS,
)
PROVIDER_CALLS = Counter(
    "cv_provider_calls",
    "HTTP calls to providers, by provider, endpoint template and status",
    ["provider", "endpoint", "status"],
)
PROVIDER_CALL_SECONDS = Histogram(
    "cv_provider_call_duration_seconds",
    "Time to a provider's answer (its headers), by provider and endpoint template",
    ["provider", "endpoint"],
    buckets=_CALL_BUCKETS,
)
# A delivery attempt's result: succeeded, failed (another attempt follows), exhausted
# (that was the last), disabled (410, or the endpoint was turned off), skipped (nothing
# was due: done already, or gone).
WEBHOOK_OUTCOMES = ("succeeded", "failed", "exhausted", "disabled", "skipped")
WEBHOOK_DELIVERIES = Counter(
    "cv_webhook_deliveries",
    "Attempts to deliver a client webhook, by outcome",
    ["outcome"],
)
SWEEP_ACTION_NAMES = (
    "redriven",
    "expired",
    "claims_interrupted",
    "dead_workers",
    "refreshes",
    "published",
)
# Every pass that ran to its end, whether it did anything or not: beat (and the worker
# that runs the sweep) alive, for "no sweep in 5 minutes" (ops/alerts.yml).
SWEEPS = Counter("cv_sweeps", "Periodic sweep passes that ran to their end")
SWEEP_ACTIONS = Counter(
    "cv_sweep_actions",
    "What the periodic sweep did: steps re-driven, vehicles expired, claims of dead "
    "workers interrupted, dead workers taken care of, "
    "refreshes made due, events published",
    ["action"],
)

# Exact status codes worth telling apart; any other is its class (2xx, 4xx…).
_STATUSES = frozenset({200, 201, 202, 204, 400, 401, 403, 404, 408, 409, 410, 422, 429})
_STATUSES |= frozenset({500, 502, 503, 504})


def fold(value: str | None, known: Iterable[str]) -> str:
    """`value` if it is one of `known`, else ``other``."""
    return value if value is not None and value in known else OTHER


def http_class(status: int) -> str:
    """``2xx``, ``4xx``…: the class of an HTTP status."""
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER


def status_label(status: int | None, *, timeout: bool = False) -> str:
    """A provider call's status: the code when it is one of a few, else its class;
    ``timeout`` or ``error`` when no answer came."""
    if status is None:
        return "timeout" if timeout else "error"
    return str(status) if status in _STATUSES else http_class(status)


def _directory() -> str | None:
    return os.environ.get(_MULTIPROC) or None


def start() -> None:
    """A process's start-up: in multiprocess mode, the files of processes that no
    longer run (a previous run, a worker that died) are removed, as prometheus-client
    asks (their counters go, which Prometheus reads as a restart). Safe to call from
    every process: only dead processes' files go."""
    directory = _directory()
    if directory is None:
        return
    atexit.register(stop)
    if values.ValueClass is not values.MultiProcessValue:  # (imported too early)
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    for path in glob.glob(os.path.join(directory, "*.db")):
        pid = os.path.basename(path)[: -len(".db")].rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: running
        return True
    return True


def stop() -> None:
    """A process's exit: its live gauges (if any) stop counting."""
    directory = _directory()
    if directory is not None:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


class _Files(Collector):
    """Every process's files in the directory, added up (MultiProcessCollector, read
    at each scrape; a file removed meanwhile is skipped)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self._directory, "*.db"))
        existing = [f for f in files if os.path.exists(f)]
        merged: Iterable[Metric] = MultiProcessCollector.merge(existing, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


class _Process(Collector):
    """This process's metrics (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(*extra: Collector) -> bytes:
    """The text exposition of every process's metrics (multiprocess mode) or this
    process's, plus `extra` collectors (evaluated now: the scrape's own gauges)."""
    registry = CollectorRegistry(auto_describe=False)
    directory = _directory()
    registry.register(_Files(directory) if directory else _Process())
    for collector in extra:
        registry.register(collector)
    return bytes(generate_latest(registry))
