"""The WebSocket (graphql-transport-ws at /graphql) has the limits HTTP has (SPEC §4): a
message over the size cap closes the connection (1009, the cap in the reason) before it
is read; a document over its token, depth or alias limit is an `error` message,
BAD_USER_INPUT, saying which limit, before anything runs; the connection goes on."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from harness import free_port, path_env, process, wait_for
from harness.procs import BIN
from settings import Settings
from store.db import Database
from tests.helpers.api import ALIASES, LIST, TOKENS
from tests.helpers.ws import connect

DEEP = "{ vehicleList { " + "connect { " * 12 + "providers" + " }" * 12 + " } }"


def acked(ws: WebSocketTestSession) -> None:
    """Acknowledged with no credentials at all: an operation that runs answers
    AUTH_TOKEN_INVALID, so any other answer was given before it ran."""
    ws.send_json({"type": "connection_init", "payload": {}})
    assert ws.receive_json()["type"] == "connection_ack"


def ask(ws: WebSocketTestSession, op: str, query: str, **variables: Any) -> dict[str, Any]:
    ws.send_json(
        {"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )
    answer: dict[str, Any] = ws.receive_json()
    return answer


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (ALIASES, "aliases found. Allowed: {s.graphql_max_aliases}"),
        (TOKENS, "more than {s.graphql_max_tokens} tokens"),
        (DEEP, "exceeds maximum operation depth of {s.graphql_max_depth}"),
    ],
    ids=["16 aliases", "2,100 tokens", "depth 13"],
)
def test_a_document_over_a_limit_is_an_error_before_anything_runs(
    api: TestClient, settings: Settings, query: str, says: str
) -> None:
    with connect(api) as ws:
        acked(ws)
        refused = ask(ws, "over", query)
        ran = ask(ws, "within", LIST)  # the connection goes on

    assert refused["type"] == "error" and refused["id"] == "over", refused
    assert {e["extensions"]["code"] for e in refused["payload"]} == {"BAD_USER_INPUT"}
    assert any(says.format(s=settings) in e["message"] for e in refused["payload"]), refused
    assert ran["payload"]["errors"][0]["extensions"]["code"] == "AUTH_TOKEN_INVALID"


def message_of(size: int) -> str:
    """A `subscribe` message of exactly `size` bytes (a padding variable)."""
    bare = json.dumps(
        {"id": "big", "type": "subscribe", "payload": {"query": LIST, "variables": {"pad": ""}}}
    )
    return bare.replace('"pad": ""', '"pad": "' + "x" * (size - len(bare)) + '"')


def test_a_message_at_the_cap_is_read(api: TestClient, settings: Settings) -> None:
    with connect(api) as ws:
        acked(ws)
        ws.send_text(message_of(settings.request_max_bytes))
        answer = ws.receive_json()

    assert answer["id"] == "big"
    assert answer["payload"]["errors"][0]["extensions"]["code"] == "AUTH_TOKEN_INVALID"


@pytest.mark.parametrize("over", [1, 5_000_000], ids=["one byte over", "5 MB"])
def test_a_message_over_the_cap_closes_the_connection(
    api: TestClient, settings: Settings, over: int
) -> None:
    with connect(api) as ws:
        acked(ws)
        ws.send_text(message_of(settings.request_max_bytes + over))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()  # the close comes first: no answer to the operation

    assert closed.value.code == 1009  # RFC 6455's Message Too Big
    assert f"larger than {settings.request_max_bytes} bytes" in closed.value.reason


def test_the_web_process_refuses_a_message_over_the_cap(db: Database, settings: Settings) -> None:
    """The Procfile's `web`: uvicorn itself refuses the message (ws_max_size), before it
    has read it whole, with the same code and the cap in its reason."""
    port = free_port()
    argv = [str(BIN / "python"), "-m", "api.serve", "--port", str(port)]
    with process("web", argv, path_env(), show=False):
        base = f"127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"http://{base}/healthz", timeout=2).status_code == 200, "web")
        with ws_connect(
            f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            with pytest.raises(ConnectionClosedError) as closed:
                ws.send(message_of(5_000_000))  # refused as it arrives: sending may fail
                ws.recv(timeout=10)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert f"exceeds limit of {settings.request_max_bytes} bytes" in closed.value.rcvd.reason
