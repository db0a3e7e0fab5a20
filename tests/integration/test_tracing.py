"""Traces, when an OTLP endpoint is configured: a request's server span and its database
spans share one trace, and a task the request enqueues joins it from the message's
headers. Without one, no instrumentation, tracer or exporter is imported (redis-py
imports OpenTelemetry's API on its own when it is installed). Each in a process of its
own (a tracer provider is set once per process)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from typing import Any

from starlette.testclient import TestClient

from harness import path_env
from harness.procs import BIN, ROOT
from harness.tenant import Tenant
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from store.db import Database
from tests.helpers.api import callback_path, create_vehicle

# A traced script's last line: the spans its in-memory exporter holds.
PRINT_SPANS = """
import json
print(json.dumps([
    {"name": s.name, "kind": s.kind.name, "trace": s.context.trace_id,
     "span": s.context.span_id, "parent": s.parent.span_id if s.parent else None,
     "service": s.resource.attributes["service.name"]}
    for s in exporter.get_finished_spans()
]))
"""

TRACED = textwrap.dedent(
    """
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient

    import telemetry
    from settings import get_settings

    exporter = InMemorySpanExporter()
    assert telemetry.setup(get_settings(), "cv-web", exporter=exporter)
    from api.app import create_app

    with TestClient(create_app(get_settings())) as client:
        client.get("/oauth/callback?state=unknown&code=x", headers={"x-request-id": "t-1"})
    """
)

# The web takes the callback (argv[1]) and enqueues the validation; then a worker in this
# process takes it from the broker, as another process would: nothing but the message's
# headers carries the trace into its pool's thread.
ENQUEUED = textwrap.dedent(
    """
    import sys
    import time
    from celery.contrib.testing.worker import start_worker
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient

    import telemetry
    from settings import get_settings

    exporter = InMemorySpanExporter()
    assert telemetry.setup(get_settings(), "cv-web", exporter=exporter)
    from api.app import create_app
    from workers.app import app

    with TestClient(create_app(get_settings()), follow_redirects=False) as client:
        assert client.get(sys.argv[1]).status_code == 303

    def ran():
        return any(s.name == "run/cv.validate_authorization" for s in exporter.get_finished_spans())

    with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False,
                      loglevel="WARNING"):
        deadline = time.monotonic() + 30
        while not ran() and time.monotonic() < deadline:
            time.sleep(0.05)
    """
)

UNTRACED = textwrap.dedent(
    """
    import sys
    from starlette.testclient import TestClient
    from api.app import create_app
    from settings import get_settings

    with TestClient(create_app(get_settings())) as client:
        client.get("/oauth/callback?state=unknown&code=x")
    ours = ("opentelemetry.instrumentation", "opentelemetry.sdk.trace", "opentelemetry.exporter")
    print(sorted(m for m in sys.modules if m.startswith(ours)))
    """
)


def run(script: str, *args: str, **env: str) -> str:
    environ = {k: v for k, v in path_env().items() if not k.startswith("OTEL_")}
    environ.pop("CV_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [str(BIN / "python"), "-c", script, *args],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.strip().splitlines()[-1]


def spans_of(script: str, *args: str, **env: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = json.loads(run(script + PRINT_SPANS, *args, **env))
    return spans


def test_a_request_is_one_trace_from_the_web_to_the_database(db: Database) -> None:
    spans = spans_of(TRACED)

    server = [s for s in spans if s["kind"] == "SERVER" and "/oauth/callback" in s["name"]]
    assert server, spans
    trace = server[0]["trace"]
    queries = [s for s in spans if s["kind"] == "CLIENT" and s["trace"] == trace]
    assert any(s["name"].startswith("SELECT") for s in queries), json.dumps(spans, indent=1)
    assert {s["service"] for s in spans} == {"cv-web"}


def ancestors(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {s["span"]: s for s in spans}
    chain = []
    while (parent := by_id.get(span["parent"])) is not None:
        chain.append(parent)
        span = parent
    return chain


def test_a_task_joins_the_trace_of_the_request_that_enqueued_it(
    api: TestClient, tenant: Tenant, smartcar: FakeServer, broker: str
) -> None:
    # given a user back from consent
    vehicle = create_vehicle(api, tenant.headers())
    back = consent(vehicle["authorization_url"])

    # when the web takes the callback and a worker runs the validation it enqueued
    spans = spans_of(ENQUEUED, callback_path(back), CV_BROKER_URL=broker)

    # then the task's run is in the request's trace, under the publish the web made
    server = next(s for s in spans if s["kind"] == "SERVER" and "/oauth/callback" in s["name"])
    runs = [s for s in spans if s["name"] == "run/cv.validate_authorization"]
    assert len(runs) == 1, json.dumps(spans, indent=1)
    assert runs[0]["trace"] == server["trace"]
    chain = ancestors(runs[0], spans)
    assert [s["kind"] for s in chain] == ["PRODUCER", "SERVER"], chain
    assert chain[-1] == server
    # and the step's provider calls are in it too
    calls = [s for s in spans if s["kind"] == "CLIENT" and s["parent"] == runs[0]["span"]]
    assert any(s["name"] == "POST" for s in calls), calls  # the code exchange


def test_without_an_endpoint_nothing_is_instrumented(db: Database) -> None:
    assert run(UNTRACED) == "[]"
