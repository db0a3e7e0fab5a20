"""The GraphQL schema of SPEC §3, assembled: queries, mutations, the subscription, the
limits, and how errors are shaped (``extensions.code``,
``extensions.exception.{code,status}``), whether a resolver or a field's permission
raised them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.exc import DataError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from api.errors import Unexpected, extensions
from api.graphql.data import DataQuery
from api.graphql.limits import graphql_limits
from api.graphql.subscriptions import Subscription
from api.graphql.vehicles import Mutation, Query
from api.graphql.webhooks import WebhookMutation, WebhookQuery
from api.metrics import OperationName, note_errors
from api.ratelimit import RateLimited
from settings import Settings
from store.db import DATABASE_AWAY, DatabaseAway
from workflows.errors import DomainError, ErrorCode

__all__ = ["CACHE_SIZE", "Schema", "build_schema"]

log = logging.getLogger(__name__)


_INTERNAL = {
    "code": "INTERNAL_SERVER_ERROR",
    "exception": {"code": "INTERNAL_SERVER_ERROR", "status": 500},
}


class Schema(strawberry.Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Over HTTP (one answer per request) a subscription is refused with a 400, as a
        mutation over GET is: it streams over the WebSocket only."""
        allowed = (
            set(allowed_operation_types)
            if allowed_operation_types is not None
            else {OperationType.QUERY, OperationType.MUTATION}
        )
        result = await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )
        note_errors(result.errors)  # the request's outcome, for its metrics
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Give every error its code; log only the unexpected ones (without secrets)."""
        for error in errors:
            original = error.original_error
            if isinstance(original, RateLimited):
                error.extensions = {
                    **extensions(original.code),
                    "retry_after": original.retry_after,
                }
            elif isinstance(original, Unexpected):
                error.message = "Internal server error"
                error.extensions = _INTERNAL
            elif isinstance(original, DomainError):
                error.extensions = extensions(original.code)
            elif isinstance(original, (*DATABASE_AWAY, DatabaseAway)):
                # the database away outside a unit of work (api.work answers those)
                error.message = ErrorCode.SERVICE_UNAVAILABLE.message()
                error.extensions = extensions(ErrorCode.SERVICE_UNAVAILABLE)
            elif isinstance(original, DataError):
                # a value the database cannot hold (too long, a NUL character): the
                # transaction rolled back, nothing changed; the value is not echoed
                error.message = "A value in the input is not valid (too long, or a NUL)"
                error.extensions = extensions(ErrorCode.BAD_USER_INPUT)
            elif original is None or error.path is None:
                # parse, validation and variable errors: raised before any resolver ran
                error.extensions = extensions(ErrorCode.BAD_USER_INPUT)
            else:
                log.error("unexpected error in %s", error.path, exc_info=original)
                error.message = "Internal server error"
                error.extensions = _INTERNAL


# Said once, on the root types: what every field takes and may answer.
_CALLER = (
    " Every field needs two headers: `x-client-id` (the client) and `Authorization: Bearer"
    " <user token>` (a JWT, HS256 with the client's signing secret, `sub` the user's id,"
    " `exp` at most the service's limit ahead, 24 h by default). Each error carries"
    " `extensions.code`, `extensions.exception.code` (the same) and"
    " `extensions.exception.status` (the HTTP status it stands for). Any field may answer"
    " AUTH_TOKEN_INVALID or AUTH_TOKEN_EXPIRED (401), RATE_LIMIT_EXCEEDED (429, with"
    " `extensions.retry_after` in seconds),"
    " SERVICE_UNAVAILABLE (503: nothing was done, ask again; `extensions.retryable`),"
    " BAD_USER_INPUT (400: a malformed document or one over the limits, a bad value)."
)


@strawberry.type(
    description="Connected vehicles, their live data, the catalogue, webhook endpoints." + _CALLER
)
class AllQueries(Query, DataQuery, WebhookQuery):
    pass


@strawberry.type(
    description="Connect, validate, re-consent, rename and remove vehicles; manage webhook"
    " endpoints. Where a provider must be called, a job does it after the commit, and the"
    " mutation waits a bounded time for the outcome." + _CALLER
)
class AllMutations(Mutation, WebhookMutation):
    pass


# The one scalar of the schema, its serialization unchanged, said precisely.
_DATETIME = dataclasses.replace(
    DateTimeDefinition,
    description="An instant: ISO-8601 with its offset from UTC, e.g."
    " `2026-11-29T00:59:12+00:00`. The service's own times are in UTC.",
)


# Documents parsed and validated, kept per process (Strawberry's caches are shared by
# every extension instance of one size).
CACHE_SIZE = 512


def build_schema(settings: Settings) -> Schema:
    """The schema with the settings' limits (checked before anything runs), then the
    caches: clients send the same few documents again and again, so each is parsed and
    validated once per process; bounded, so unique documents cannot grow memory."""
    return Schema(
        query=AllQueries,
        mutation=AllMutations,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=False),
        scalar_overrides={datetime: _DATETIME},
        extensions=[
            OperationName,  # the request's root field, for its metrics
            *graphql_limits(settings),
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
        ],
    )
