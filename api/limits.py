"""What one request may cost, checked before any work: the body's size, on every route
(read no further than the cap), and each WebSocket message's. A GraphQL document's
depth, aliases and tokens are limited in :mod:`api.graphql.limits`."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]


# RFC 6455's "Message Too Big": what uvicorn answers too for a message over its
# ws_max_size (api.serve sets it to the same cap), so a client sees one code for one fault.
MESSAGE_TOO_BIG = 1009


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 having read at
    most `max_bytes` + one chunk of it (a declared Content-Length over the cap: none at
    all). A body within the cap is handed on whole, as it came. A WebSocket message over
    `max_bytes` closes the connection (1009, the cap in the reason) before the app reads
    it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then only a disconnect can come

        await self.app(scope, replay, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Closed rather than answered with an `error` for the message's operation: its
        id is inside the JSON that the cap is there not to parse, and the HTTP twin
        (413) closes its connection too. The app sees the client gone (its operations
        end) and whatever it still sends is dropped: the connection is closed."""
        closed = False

        async def limited() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and _size(message) > self.max_bytes:
                closed = True
                reason = f"the message is larger than {self.max_bytes} bytes"
                await send({"type": "websocket.close", "code": MESSAGE_TOO_BIG, "reason": reason})
                return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG, "reason": reason}
            return message

        async def unless_closed(message: Message) -> None:
            if not closed:
                await send(message)

        await self.app(scope, limited, unless_closed)

    async def _too_large(self, send: Send) -> None:
        answer = json.dumps(
            {"error": f"the request body is larger than {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _size(message: Message) -> int:
    """A WebSocket message's size on the wire: a text message's in UTF-8."""
    text = message.get("text")
    if text is not None:
        return len(text.encode())
    return len(message.get("bytes") or b"")
