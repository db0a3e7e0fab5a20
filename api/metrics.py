"""The web's metrics: each HTTP request by operation and outcome with its latency
(:class:`RequestMetrics`, :class:`OperationName`), and ``GET /metrics`` (:func:`route`),
which adds the scrape's own gauges (:class:`ScrapeGauges`): each queue's depth, the
outbox's lag and the worker processes' heartbeats, read when Prometheus asks, at a
bounded cost (one Redis round trip, one indexed query, one over the few heartbeat rows).

The operation is the GraphQL document's root field (``connectedVehicle``…) when the
request ran one, ``multiple`` for several, ``introspection`` for GraphiQL's; else the
route's path template (``/webhooks/{provider}``), ``other`` for a path that matches no
route. The outcome is the first GraphQL error's code, or the HTTP status class. Neither
ever carries what the caller sent: names outside the schema's root fields are ``other``.
The same parse names the operation on the request's access line (its kind and the
schema's root fields it asks for: ``mutation createConnectedVehicle``; logconfig).

``/metrics`` asks for ``Authorization: Bearer $CV_METRICS_TOKEN``; without that setting
it answers 404 (as ``/ops`` does): the web is the service's public edge, and its volumes
and failure rates are for its operators.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple

import anyio.to_thread
import redis
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

import logconfig
import metrics
from celeryconfig import QUEUES
from settings import Settings, get_settings, is_redis
from store.db import Database
from store.models import OutboxEvent, WorkerHeartbeat, utcnow
from workflows.errors import ErrorCode

__all__ = [
    "Heartbeats",
    "OperationName",
    "RequestMetrics",
    "ScrapeGauges",
    "note_errors",
    "route",
]

log = logging.getLogger(__name__)

_CODES = frozenset(c.value for c in ErrorCode) | {"INTERNAL_SERVER_ERROR"}
MULTIPLE, INTROSPECTION = "multiple", "introspection"
# The root fields every schema has (introspection's).
_META_FIELDS = frozenset({"__schema", "__type", "__typename"})


class _Noted:
    """What the GraphQL layer learnt of the request being answered."""

    __slots__ = ("operation", "outcome")

    def __init__(self) -> None:
        self.operation: str | None = None
        self.outcome: str | None = None


_REQUEST: contextvars.ContextVar[_Noted | None] = contextvars.ContextVar(
    "cv_metrics_request", default=None
)


class RequestMetrics:
    """ASGI middleware: counts each HTTP request (not WebSockets) and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        noted = _Noted()
        token = _REQUEST.set(noted)
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _REQUEST.reset(token)
            route = scope.get("route")
            operation = noted.operation or (route.path if route is not None else metrics.OTHER)
            outcome = noted.outcome or metrics.http_class(status)
            metrics.REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - started)
            metrics.REQUESTS.labels(operation, outcome).inc()


def note_errors(errors: list[Any] | None) -> None:
    """The result of the request's GraphQL operation: its first error's code (the
    schema's ``process_errors`` set it), if any."""
    noted = _REQUEST.get()
    if noted is None or not errors:
        return
    code = (getattr(errors[0], "extensions", None) or {}).get("code")
    noted.outcome = metrics.fold(code, _CODES)


class OperationName(SchemaExtension):
    """Notes the request's operation: its root field, from the parsed document, for its
    metrics and its access line (no second parse: Strawberry's, from its cache)."""

    _known: ClassVar[dict[int, frozenset[str]]] = {}

    def on_operation(self) -> Iterator[None]:
        yield
        noted = _REQUEST.get()
        ctx = self.execution_context
        if noted is None or ctx.graphql_document is None:
            return
        known = self._root_fields(ctx.schema._schema)
        kind, names = _root_names(ctx.graphql_document, ctx.operation_name)
        labels = {INTROSPECTION if n.startswith("__") else metrics.fold(n, known) for n in names}
        if labels:
            noted.operation = labels.pop() if len(labels) == 1 else MULTIPLE
        # The access line: the schema's own names only, never an argument, a variable,
        # an alias or a name the caller made up (none known: nothing said).
        fields = [n for n in names if n in known or n in _META_FIELDS]
        logconfig.note_operation(f"{kind} {','.join(fields)}" if fields else None)

    @classmethod
    def _root_fields(cls, schema: GraphQLSchema) -> frozenset[str]:
        known = cls._known.get(id(schema))
        if known is None:
            types = (schema.query_type, schema.mutation_type, schema.subscription_type)
            known = frozenset(name for t in types if t is not None for name in t.fields)
            cls._known[id(schema)] = known
        return known


def _root_names(document: DocumentNode, operation_name: str | None) -> tuple[str, list[str]]:
    """The chosen operation's kind (``query``…) and its root fields' names, in the
    document's order, each once; none when the operation is not one to choose."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name is not None and o.name.value == operation_name)
    ]
    if len(chosen) != 1:
        return "", []
    fragments = {
        d.name.value: d.selection_set
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    names: dict[str, None] = {}  # (ordered: as the document asks)
    _collect(chosen[0].selection_set, fragments, names, depth=0)
    return chosen[0].operation.value, list(names)


def _collect(
    selections: SelectionSetNode,
    fragments: dict[str, SelectionSetNode],
    names: dict[str, None],
    depth: int,
) -> None:
    if depth > 3:  # fragments of fragments: enough
        return
    for node in selections.selections:
        if isinstance(node, FieldNode):
            names[node.name.value] = None
        elif isinstance(node, InlineFragmentNode):
            _collect(node.selection_set, fragments, names, depth + 1)
        elif isinstance(node, FragmentSpreadNode):
            spread = fragments.get(node.name.value)
            if spread is not None:
                _collect(spread, fragments, names, depth + 1)


class Heartbeats(NamedTuple):
    """``worker_heartbeats`` at a scrape: the processes beating (last beat within the
    dead time), and the seconds since the newest and the oldest row's last beat (None:
    no row)."""

    beating: int
    newest_age: float | None
    oldest_age: float | None


class ScrapeGauges:
    """Read at each scrape: ``cv_queue_depth{queue}`` (messages waiting in each of the
    three queues), ``cv_outbox_lag_seconds`` (age of the oldest unpublished event; 0
    when none) and, from ``worker_heartbeats`` (workflows.liveness), the worker processes'
    liveness: ``cv_workers_beating`` (processes that beat within
    ``CV_WORKER_DEAD_SECONDS``), ``cv_worker_heartbeat_age_seconds`` (since the newest
    beat of any; no sample when no process has a row) and
    ``cv_worker_heartbeat_max_age_seconds`` (since the last beat of the most silent row; 0
    when none). None is labelled by process: ids change with every restart. A source that
    does not answer is left out of that scrape (logged)."""

    def __init__(
        self, db: Database, broker_url: str, worker_dead_seconds: float | None = None
    ) -> None:
        self._db = db
        self._broker_url = broker_url
        self._redis: redis.Redis[bytes] | None = None
        # The sweeper's own dead time (the same CV_WORKER_DEAD_SECONDS) unless given: a
        # process counted as beating here is one the sweep does not suspect.
        self._dead_seconds = (
            get_settings().worker_dead_seconds
            if worker_dead_seconds is None
            else worker_dead_seconds
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = self._queue_depths()
        if depth is not None:
            family = GaugeMetricFamily(
                "cv_queue_depth", "Messages waiting in each queue", labels=["queue"]
            )
            for queue, n in depth.items():
                family.add_metric([queue], n)
            yield family
        lag = self._outbox_lag()
        if lag is not None:
            yield GaugeMetricFamily(
                "cv_outbox_lag_seconds",
                "Age of the oldest event not yet published (0: none waiting)",
                value=lag,
            )
        beats = self._heartbeats()
        if beats is not None:
            yield GaugeMetricFamily(
                "cv_workers_beating",
                "Worker processes whose last heartbeat is within CV_WORKER_DEAD_SECONDS",
                value=beats.beating,
            )
            newest = GaugeMetricFamily(
                "cv_worker_heartbeat_age_seconds",
                "Seconds since the newest heartbeat of any worker process (none: no process)",
            )
            # No row, no age: 0 would read as a beat just now, and the family stays listed.
            if beats.newest_age is not None:
                newest.add_metric([], beats.newest_age)
            yield newest
            yield GaugeMetricFamily(
                "cv_worker_heartbeat_max_age_seconds",
                "Seconds since the last beat of the most silent worker process's row (0: "
                "none); the sweep removes a dead one's row (about 30 s at the defaults)",
                value=beats.oldest_age or 0.0,
            )

    def _queue_depths(self) -> dict[str, int] | None:
        try:
            if is_redis(self._broker_url):
                if self._redis is None:
                    self._redis = redis.Redis.from_url(
                        self._broker_url, socket_timeout=2, socket_connect_timeout=2
                    )
                pipe = self._redis.pipeline(transaction=False)
                for queue in QUEUES:
                    pipe.llen(queue)
                return dict(zip(QUEUES, (int(n) for n in pipe.execute()), strict=True))
            return self._amqp_depths()
        except Exception as exc:
            log.warning("metrics: queue depth not read (%s)", type(exc).__name__)
            return None

    def _amqp_depths(self) -> dict[str, int]:
        from amqp.exceptions import NotFound
        from kombu.connection import Connection

        depths: dict[str, int] = {}
        with Connection(self._broker_url, connect_timeout=2) as conn:  # type: ignore[no-untyped-call]
            channel = conn.default_channel
            for queue in QUEUES:
                try:
                    ok = channel.queue_declare(queue=queue, passive=True)
                    depths[queue] = int(ok.message_count)
                except NotFound:
                    # Not declared yet (no worker or publisher has): nothing waits in it,
                    # as Redis's LLEN of a missing list. The broker closed the channel for
                    # asking; py-amqp reopened it before raising, so the next queue is read.
                    depths[queue] = 0
        return depths

    def _outbox_lag(self) -> float | None:
        # The oldest unpublished event by its seq: the partial index ix_outbox_unpublished.
        query = (
            select(OutboxEvent.created_at)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.seq)
            .limit(1)
        )
        try:
            with self._db.engine.connect() as conn:
                oldest = conn.execute(query).scalar()
        except Exception as exc:
            log.warning("metrics: outbox lag not read (%s)", type(exc).__name__)
            return None
        if oldest is None:
            return 0.0
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    def _heartbeats(self) -> Heartbeats | None:
        hb = WorkerHeartbeat
        now = utcnow()
        since = now - timedelta(seconds=self._dead_seconds)
        # One pass over a row per worker process (tens): no index, no rows sent back.
        query = select(
            func.count(case((hb.beat_at >= since, 1))),
            func.max(hb.beat_at),
            func.min(hb.beat_at),
        )
        try:
            with self._db.engine.connect() as conn:
                beating, newest, oldest = conn.execute(query).one()
        except Exception as exc:
            log.warning("metrics: worker heartbeats not read (%s)", type(exc).__name__)
            return None
        return Heartbeats(int(beating), _seconds_since(newest, now), _seconds_since(oldest, now))

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def _seconds_since(at: datetime | None, now: datetime) -> float | None:
    # beat_at is by the worker's clock: a clock ahead of the web's reads as 0, not less.
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (now - at).total_seconds())


def route(settings: Settings, *collectors: Collector) -> Route:
    """``GET /metrics``, in Prometheus's text format, plus `collectors` read at each
    scrape (the web's service-wide gauges; a worker host's exporter has none). Also this
    process's start of its metrics: in multiprocess mode, dead processes' files are
    removed."""
    metrics.start()
    token = settings.metrics_token.get_secret_value()

    async def endpoint(request: Request) -> Response:
        if not token:
            return JSONResponse({"error": "not found"}, status_code=404)
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await anyio.to_thread.run_sync(metrics.exposition, *collectors)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return Route("/metrics", endpoint, methods=["GET"])
