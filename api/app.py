"""The ASGI app: GraphQL at /graphql (GraphiQL in a browser), the OAuth callback, health.

Run with ``uvicorn --factory api.app:create_app``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

import logconfig
import telemetry
from api import graphiql, jobs
from api.callback import oauth_callback
from api.errors import json_error
from api.graphql import GraphQLApp
from api.limits import BodyLimit
from api.metrics import RequestMetrics, ScrapeGauges
from api.metrics import route as metrics_route
from api.ops import (
    bulk_redrive_endpoint,
    bulk_run_endpoint,
    bulk_state_endpoint,
    redrive_endpoint,
    replay_endpoint,
)
from api.provider_webhooks import provider_webhook
from api.requestid import RequestId
from api.work import ServiceUnavailable
from settings import Settings, get_settings
from store.db import DATABASE_AWAY, Database, DatabaseAway, open_database
from store.keys import check_key

__all__ = ["create_app"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    db: Database = request.app.state.db

    def database_ok() -> bool:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def key_ok() -> bool:
        try:
            check_key(db.engine)  # a canary of each kind of secret stored
            return True
        except Exception:
            return False

    checks = {
        "database": await anyio.to_thread.run_sync(database_ok),
        "broker": await anyio.to_thread.run_sync(jobs.broker_reachable),
        "secret_key": await anyio.to_thread.run_sync(key_ok),
    }
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


async def database_away(request: Request, exc: Exception) -> Response:
    return json_error(ServiceUnavailable())


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    # the web's logging, unless the process set it up already (api.serve: uvicorn's)
    logconfig.configure(settings.log_format, settings.log_level)
    telemetry.setup(settings, "cv-web")  # when an OTLP endpoint is set
    problem = settings.events_problem()
    if problem is not None:  # refuse to start, and say why
        raise RuntimeError(problem)
    # Its dispatcher enqueues, after each commit, what the transaction set in motion.
    db = open_database(
        settings.database_url,
        settings.secret_key.get_secret_value(),
        dispatcher=jobs.dispatcher(),
    )
    try:  # a key that does not read what is stored: refuse to start, and say why
        check_key(db.engine)
    except OperationalError:  # the database is not up yet: readiness reports it
        logging.getLogger(__name__).warning("database not reachable: key checked later")
    except Exception:
        db.engine.dispose()
        raise
    graphql = GraphQLApp(db, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await graphql.wakeups.aclose()  # the listener starts on the first wait
        await graphql.rate_limits.aclose()

    app = Starlette(
        lifespan=lifespan,
        # The database away where no unit of work answered for it (api.work): 503.
        exception_handlers=dict.fromkeys((*DATABASE_AWAY, DatabaseAway), database_away),
        # A body over the cap is refused before it is read whole (SPEC §4).
        middleware=[
            Middleware(RequestId),  # first: every line of the request carries its id
            Middleware(RequestMetrics),  # counted and timed, whatever answers
            Middleware(BodyLimit, max_bytes=settings.request_max_bytes),
        ],
        routes=[
            # every method: the view answers one it does not serve as a GraphQL error
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),  # subscriptions (graphql-transport-ws)
            Mount(graphiql.STATIC_PATH, graphiql.static_files()),  # GraphiQL's page's files
            Route("/oauth/callback", oauth_callback, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            # GET /metrics, behind CV_METRICS_TOKEN
            metrics_route(
                settings,
                ScrapeGauges(db, settings.broker_url, settings.worker_dead_seconds),
            ),
            Route("/ops/vehicles/{id}/redrive", redrive_endpoint, methods=["POST"]),
            Route("/ops/redrives", bulk_redrive_endpoint, methods=["POST"]),
            Route("/ops/redrives/{id}", bulk_run_endpoint, methods=["GET"]),
            Route(
                "/ops/redrives/{id}/{action:str}",
                bulk_state_endpoint,
                methods=["POST"],
            ),
            Route("/ops/webhook-deliveries/{id}/replay", replay_endpoint, methods=["POST"]),
            Route("/webhooks/{provider}", provider_webhook, methods=["POST"]),
        ],
    )
    telemetry.instrument_app(app)  # and its engine: traced when an endpoint is set
    telemetry.instrument_engine(db.engine)
    app.state.db = db
    app.state.settings = settings
    app.state.graphql = graphql
    app.state.rate_limits = graphql.rate_limits  # the callback's and webhooks' too
    return app
