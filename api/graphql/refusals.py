"""What the GraphQL view refuses before any GraphQL runs, answered as GraphQL errors.

Strawberry's HTTP layer answers a request it cannot serve (a method other than GET and
POST, a body it cannot read, no `query`, a content type it does not parse, a
subscription over HTTP) with a plain-text 4xx, which GraphiQL and every client that
reads the body as JSON choke on (`Unexpected token 's' … is not valid JSON`). Here each
is the API's error shape: ``{"errors": [{"message", "extensions": {"code",
"exception": {"code", "status"}}}]}``, code ``BAD_USER_INPUT``, with the HTTP status
Strawberry chose (400; 405 for a method) as the response's and as
``extensions.exception.status``.
"""

from __future__ import annotations

from cross_web import HTTPException
from starlette.responses import JSONResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from api.errors import extensions
from workflows.errors import ErrorCode

__all__ = ["SUBSCRIPTION_OVER_HTTP", "refusal"]

SUBSCRIPTION_OVER_HTTP = (
    "Over HTTP, subscriptions are not allowed: open a WebSocket to this same path"
    " (/graphql) with the graphql-transport-ws protocol and subscribe there"
)

# Strawberry's reasons (0.341), said in words a client developer acts on; a reason not
# listed here is passed on as Strawberry wrote it.
_CLEARER = {
    "GraphQL only supports GET and POST requests.": (
        "GraphQL is served over GET (queries) and POST (queries and mutations) only;"
        " subscriptions over a WebSocket (graphql-transport-ws) at the same path"
    ),
    "No GraphQL query found in the request": (
        "The request has no GraphQL document: send it as `query` (a field of the JSON"
        " body, or GET's query parameter)"
    ),
    "Unsupported content type": (
        "Unsupported content type: POST a JSON body (content-type: application/json)"
        ' such as {"query": "...", "variables": {...}}'
    ),
    "Unable to parse request body as JSON": "The request body is not valid JSON",
    "Batching is not enabled": (
        "A list of operations (batching) is not served: send one operation per request"
    ),
    "mutations are not allowed when using GET": (
        "mutations are not allowed when using GET: send them with POST"
    ),
}

_ALLOWED_METHODS = "GET, POST"


def refusal(exc: HTTPException) -> JSONResponse:
    """The GraphQL error body for what Strawberry's HTTP layer raised."""
    cause = exc.__cause__
    if (
        isinstance(cause, InvalidOperationTypeError)
        and cause.operation_type is OperationType.SUBSCRIPTION
    ):
        message = SUBSCRIPTION_OVER_HTTP
    else:
        message = _CLEARER.get(exc.reason, exc.reason)
    shaped = extensions(ErrorCode.BAD_USER_INPUT)
    # the status answered (a 405 is no 400), as every other error's says the one it stands for
    shaped["exception"] = {"code": ErrorCode.BAD_USER_INPUT.value, "status": exc.status_code}
    headers = {"allow": _ALLOWED_METHODS} if exc.status_code == 405 else None
    return JSONResponse(
        {"errors": [{"message": message, "extensions": shaped}]},  # no `data`: nothing ran
        status_code=exc.status_code,
        headers=headers,
    )
