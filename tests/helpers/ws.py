"""GraphQL subscriptions over the API's WebSocket (graphql-transport-ws), in process."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient, WebSocketTestSession

__all__ = ["SUBSCRIBE", "connect", "init", "subscribe"]

SUBSCRIBE = "subscription($id: ID!) { connectedVehicle(id: $id) { id label } }"


def connect(api: TestClient) -> Any:
    return api.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"])


def init(ws: WebSocketTestSession, headers: dict[str, str]) -> None:
    ws.send_json({"type": "connection_init", "payload": headers})
    assert ws.receive_json()["type"] == "connection_ack"


def subscribe(ws: WebSocketTestSession, op: str, vehicle_id: str) -> None:
    ws.send_json(
        {
            "id": op,
            "type": "subscribe",
            "payload": {"query": SUBSCRIBE, "variables": {"id": vehicle_id}},
        }
    )
