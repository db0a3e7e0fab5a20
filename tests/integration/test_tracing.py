"""Traces, when an OTLP endpoint is configured: a request's server span and its database
spans share one trace. Without one, no instrumentation, tracer or exporter is imported
(redis-py imports OpenTelemetry's API on its own when it is installed). Each in a
process of its own (a tracer provider is set once per process)."""

from __future__ import annotations

import json
import subprocess
import textwrap

from bench.harness import path_env
from bench.harness.procs import BIN, ROOT
from store.db import Database

TRACED = textwrap.dedent(
    """
    import json
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient

    import telemetry
    from settings import get_settings

    exporter = InMemorySpanExporter()
    assert telemetry.setup(get_settings(), "cv-web", exporter=exporter)
    from api.app import create_app

    with TestClient(create_app(get_settings())) as client:
        client.get("/oauth/callback?state=unknown&code=x", headers={"x-request-id": "t-1"})
    print(json.dumps([
        {"name": s.name, "kind": s.kind.name, "trace": s.context.trace_id,
         "service": s.resource.attributes["service.name"]}
        for s in exporter.get_finished_spans()
    ]))
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


def run(script: str, **env: str) -> str:
    environ = {k: v for k, v in path_env().items() if not k.startswith("OTEL_")}
    environ.pop("CV_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [str(BIN / "python"), "-c", script],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_request_is_one_trace_from_the_web_to_the_database(db: Database) -> None:
    spans = json.loads(run(TRACED))

    server = [s for s in spans if s["kind"] == "SERVER" and "/oauth/callback" in s["name"]]
    assert server, spans
    trace = server[0]["trace"]
    queries = [s for s in spans if s["kind"] == "CLIENT" and s["trace"] == trace]
    assert any(s["name"].startswith("SELECT") for s in queries), json.dumps(spans, indent=1)
    assert {s["service"] for s in spans} == {"cv-web"}


def test_without_an_endpoint_nothing_is_instrumented(db: Database) -> None:
    assert run(UNTRACED) == "[]"
