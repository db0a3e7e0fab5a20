"""Domain errors in the shapes clients branch on (SPEC §3): GraphQL error extensions,
and the JSON body of the operators' endpoints."""

from __future__ import annotations

from starlette.responses import JSONResponse

from workflows.errors import DomainError, ErrorCode

__all__ = ["Unexpected", "extensions", "json_error"]


class Unexpected(Exception):
    """An error no one foresaw, already logged where it happened: answered
    INTERNAL_SERVER_ERROR, with no detail (its message could hold anything)."""


def extensions(code: ErrorCode) -> dict[str, object]:
    return {"code": code.value, "exception": {"code": code.value, "status": code.status}}


def json_error(error: DomainError) -> JSONResponse:
    body = {"error": {"code": error.code.value, "message": error.message}}
    return JSONResponse(body, status_code=error.status)
