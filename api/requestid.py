"""Every request has an id: the caller's ``X-Request-ID`` when it is well formed (short,
plain characters), else a new one. It is the context of everything the request logs
(logconfig), rides in the headers of the tasks it enqueues and on the outbox events it
writes, and goes back in the response's ``X-Request-ID``. Pure ASGI: no task, no copy
of the body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

import logconfig

__all__ = ["HEADER", "RequestId"]

HEADER = "x-request-id"
_HEADER = HEADER.encode()


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _HEADER), b"")
        request_id = given.decode("latin-1")
        if not logconfig.well_formed(request_id):
            request_id = logconfig.new_request_id()
        raw = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, raw)]}
            await send(message)

        token = logconfig.begin(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logconfig.end(token)
