"""The GraphQL schema of SPEC §3, assembled: queries, mutations, the subscription, the
limits, and how errors are shaped (``extensions.code``,
``extensions.exception.{code,status}``), whether a resolver or a field's permission
raised them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.exc import DataError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
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


@strawberry.type
class AllQueries(Query, DataQuery, WebhookQuery):
    pass


@strawberry.type
class AllMutations(Mutation, WebhookMutation):
    pass


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
        extensions=[
            OperationName,  # the request's root field, for its metrics
            *graphql_limits(settings),
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
        ],
    )
