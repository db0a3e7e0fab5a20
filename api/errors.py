"""Domain errors as GraphQL errors, in the shape clients branch on (SPEC §3)."""

from __future__ import annotations

from graphql import GraphQLError

from workflows.errors import DomainError, ErrorCode

__all__ = ["extensions", "graphql_error"]


def extensions(code: ErrorCode) -> dict[str, object]:
    return {"code": code.value, "exception": {"code": code.value, "status": code.status}}


def graphql_error(error: DomainError) -> GraphQLError:
    return GraphQLError(error.message, extensions=extensions(error.code))
