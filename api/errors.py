"""Domain errors in the shapes clients branch on (SPEC §3): GraphQL error extensions,
and the JSON body of the operators' endpoints."""

from __future__ import annotations

from starlette.responses import JSONResponse

from workflows.errors import DomainError, ErrorCode

__all__ = ["RETRY_AFTER_UNAVAILABLE", "Unexpected", "extensions", "json_error"]


class Unexpected(Exception):
    """An error no one foresaw, already logged where it happened: answered
    INTERNAL_SERVER_ERROR, with no detail (its message could hold anything)."""


# Seconds a caller is asked to wait (`Retry-After`) when the database is away.
RETRY_AFTER_UNAVAILABLE = 2


def extensions(code: ErrorCode) -> dict[str, object]:
    shaped: dict[str, object] = {
        "code": code.value,
        "exception": {"code": code.value, "status": code.status},
    }
    if code.retryable:  # a passing state: the same request may well succeed later
        shaped["retryable"] = True
    return shaped


def json_error(error: DomainError) -> JSONResponse:
    body = {"error": {"code": error.code.value, "message": error.message}}
    response = JSONResponse(body, status_code=error.status)
    if error.code is ErrorCode.SERVICE_UNAVAILABLE:
        response.headers["retry-after"] = str(RETRY_AFTER_UNAVAILABLE)
    return response
