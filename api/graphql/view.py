"""The GraphQL view: Strawberry's ASGI app at /graphql (HTTP and graphql-transport-ws;
GraphiQL for a browser), with the process's shared pieces (signing secrets' cache,
wakeups, rate limits) and a :class:`~api.graphql.context.Context` per request.

The WebSocket has the limits HTTP has: a message over the size cap closes it
(:class:`api.limits.BodyLimit`); a document over its token, depth or alias limit, and a
subscription over the connection's cap, is an `error` message (BAD_USER_INPUT). Over
HTTP, a request the view refuses before any GraphQL runs is a GraphQL error body too
(:mod:`api.graphql.refusals`)."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException  # what Strawberry's HTTP layer answers as a 4xx
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema.schema import StreamResult
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from api import graphiql
from api.errors import extensions
from api.graphql.context import Context
from api.graphql.refusals import refusal
from api.graphql.schema import build_schema
from api.ratelimit import RateLimits
from api.wakeups import Wakeups
from settings import Settings
from store.db import Database
from workflows.errors import ErrorCode
from workflows.signing_secrets import SigningSecrets

__all__ = ["GraphQLApp"]


class TransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with clear errors where it had none."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Over the connection's cap (queries and mutations in flight count too), an
        `error` that says the cap (Strawberry's own says only "Subscription limit
        reached", with no code); the connection and its other operations go on."""
        cap = self.max_subscriptions_per_connection
        if (
            cap is not None
            and self.connection_acknowledged  # else Strawberry closes it, 4401
            and message["id"] not in self.operations  # else Strawberry closes it, 4409
            and len(self.operations) >= cap
        ):
            error = GraphQLError(
                f"Subscription limit reached: a connection holds at most {cap} operations"
                " at once; complete one first",
                extensions=extensions(ErrorCode.BAD_USER_INPUT),
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: StreamResult
    ) -> None:
        """Strawberry's stream (0.341) lets an error raised while the parser cache parses
        escape: a document over the token limit (or not GraphQL at all) ended in a bare
        `complete`. It is answered as over HTTP: an `error`, BAD_USER_INPUT, nothing run.
        (Depth and aliases are validation errors, which Strawberry answers itself.)"""
        try:
            await super()._send_result_stream(operation, result_source)
        except GraphQLError as error:
            self.schema.process_errors([error])
            await operation.send_initial_errors([error])


class GraphQLApp(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWS

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's, but what its HTTP layer refuses (no query, a body it cannot read,
        a subscription over HTTP, …) is a GraphQL error body, never plain text
        (:func:`~api.graphql.refusals.refusal`)."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive=receive))
        except HTTPException as exc:
            response = refusal(exc)
        await response(scope, receive, send)

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
            source=request.client.host if request.client else None,
        )
