"""What a GraphQL document may cost: its depth, aliases and tokens, checked before it is
executed, so before authentication and any database read (the body's size is capped
before, for every route, by :class:`api.limits.BodyLimit`)."""

from __future__ import annotations

from collections.abc import Callable

from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.query_depth_limiter import IgnoreContext

from settings import Settings

__all__ = ["graphql_limits"]


def _introspection(context: IgnoreContext) -> bool:
    """GraphiQL's schema query is deep by nature (types of types of types): its depth is
    not a caller's cost (introspection itself is a setting)."""
    return context.field_name.startswith("__")


def graphql_limits(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The schema's limiting extensions, before its caches: a document over a limit is a
    parse or validation error (BAD_USER_INPUT), never executed."""
    tokens = settings.graphql_max_tokens
    # The depth and alias rules are made once, here. Their classes are part of the
    # validation cache's key, and a limiter built per request makes new classes: every
    # document was validated again, a quarter of the web's CPU in `make bench`.
    rules = [
        *QueryDepthLimiter(
            max_depth=settings.graphql_max_depth, should_ignore=_introspection
        ).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    # Factories: a fresh extension per request, as Strawberry asks.
    limits: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=tokens),
        lambda: AddValidationRules(rules),
    ]
    if not settings.graphql_introspection:
        limits.append(DisableIntrospection)
    return limits
