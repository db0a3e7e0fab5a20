"""The GraphQL view: Strawberry's ASGI app at /graphql (HTTP and graphql-transport-ws;
GraphiQL for a browser), with the process's shared pieces (signing secrets' cache,
wakeups, rate limits) and a :class:`~api.graphql.context.Context` per request."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException  # what Strawberry's HTTP layer answers as a 4xx
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api import graphiql
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.ratelimit import RateLimits
from api.wakeups import Wakeups
from settings import Settings
from store.db import Database
from workflows.clients import SigningSecrets

__all__ = ["GraphQLApp"]


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__(
            build_schema(settings),
            max_subscriptions_per_connection=settings.subscriptions_per_connection,
        )
        self.db = db
        self.settings = settings
        # One of each per process: shared by every request it serves.
        self.signing_secrets = SigningSecrets(
            settings.principal_cache_seconds, max_lifetime=settings.user_token_max_seconds
        )
        self.wakeups = Wakeups(settings.events_url)
        self.rate_limits = RateLimits(settings)

    async def render_graphql_ide(self, request: Request) -> Response:
        """A browser's GET: GraphiQL from this service's own files (`api.graphiql`), not
        Strawberry's page, whose scripts come from a CDN."""
        return graphiql.page()

    def parse_json(self, data: str | bytes) -> Any:
        """A body that is no JSON object (null, a string, a number, invalid UTF-8, nesting
        deeper than the parser goes) is a clear 400, never a 500."""
        try:
            parsed = self.decode_json(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise HTTPException(400, "The request body is not valid JSON") from exc
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(
            self.db,
            self.settings,
            request.headers,
            signing_secrets=self.signing_secrets,
            wakeups=self.wakeups,
            rate_limits=self.rate_limits,
            # On a WebSocket Strawberry passes the socket itself: there is no HTTP
            # response to answer 429 on (the error still says RATE_LIMIT_EXCEEDED).
            response=None if isinstance(response, WebSocket) else response,
        )
