"""Traces (OpenTelemetry), only when an OTLP endpoint is configured (``CV_OTLP_ENDPOINT``
or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``): the web's requests (Starlette), the
tasks published and run (Celery, the trace carried in the message), the database
(SQLAlchemy) and the providers (httpx), exported over OTLP/HTTP in batches. Unset,
no instrumentation, tracer or exporter is imported.

Each process calls :func:`setup` at its edge (the web in create_app, a worker in its
process's start, beat at start), then hands over its database's engine
(:func:`instrument_engine`) and, the web, its app (:func:`instrument_app`).
"""

from __future__ import annotations

import os
from typing import Any

from settings import Settings

__all__ = ["instrument_app", "instrument_engine", "setup"]

_SET_UP: set[int] = set()  # pids: once per process


def setup(settings: Settings, service: str, *, exporter: Any = None) -> bool:
    """Trace this process when an endpoint is configured (or an `exporter` is given: the
    tests' in-memory one, spans then exported as they end); whether it is traced."""
    if os.getpid() in _SET_UP:
        return True
    if not settings.otlp_endpoint and exporter is None:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = str(settings.otlp_endpoint).rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]
    _SET_UP.add(os.getpid())
    return True


def instrument_app(app: Any) -> None:
    """The web's requests as server spans (after :func:`setup`; nothing without it)."""
    if os.getpid() not in _SET_UP:
        return
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor

    StarletteInstrumentor.instrument_app(app)


def instrument_engine(engine: Any) -> None:
    """The database's statements as client spans: the process's one engine (the first
    handed over; nothing before :func:`setup`). The SQLAlchemy instrumentation declares
    SQLAlchemy < 2.1 and this is 2.1: its dependency check is skipped (the events it
    listens to are the same)."""
    if os.getpid() not in _SET_UP:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True)
