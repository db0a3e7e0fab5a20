"""Events: written to the outbox in the transaction of the change they tell of.

The payload is the vehicle as a client sees it, never a token, a code or an OAuth state
(nothing replayable leaves the service: SPEC §4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

import logconfig
from store.models import ConnectedVehicle, OutboxEvent
from workflows.dispatch import note_event

__all__ = ["ALL_EVENTS", "CHANGED", "record_event", "vehicle_channel", "vehicle_view"]

# Redis pub/sub channels the relay publishes to: everything, and one vehicle's events.
ALL_EVENTS = "cv:events"
# A vehicle's id, published right after every commit that changed it: wakes whoever waits
# for that vehicle (a mutation's bounded wait) without polling. Carries nothing else.
CHANGED = "cv:changed"


def vehicle_channel(vehicle_id: str) -> str:
    return f"cv:vehicle:{vehicle_id}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def vehicle_view(v: ConnectedVehicle, *, for_owner: bool = False) -> dict[str, Any]:
    """The vehicle as a client sees it. An event's payload (`for_owner` False) leaves
    the OAuth state out: it rides in the authorization URL, and whoever holds it can
    finish the flow with an account of their choosing. The event says the URL is ready
    (`authorization_ready`); the API, which knows the caller, hands it to the owner."""
    failure = None
    if v.failure_code:
        failure = {
            "code": v.failure_code,
            "message": v.failure_message,
            "retryable": bool(v.failure_retryable),
        }
    return {
        "id": v.id,
        "vehicle_id": v.vehicle_id,
        "status": v.status,
        "provider": v.provider,
        "scope": list(v.scope or []),
        "label": v.label,
        "authorization_url": (v.authorization_url if for_owner and v.status == "pending" else None),
        "authorization_ready": v.status == "pending" and v.authorization_url is not None,
        "vin": v.vin,
        "failure": failure,
        "created_at": _iso(v.created_at),
        "updated_at": _iso(v.updated_at),
        "authorized_at": _iso(v.authorized_at),
    }


def record_event(
    session: Session,
    type_: str,
    vehicle: ConnectedVehicle,
    *,
    data: dict[str, Any] | None = None,
) -> OutboxEvent:
    """`data`: the car's new snapshot (``connected_vehicle.data_updated``), beside the
    vehicle in the payload."""
    payload = vehicle_view(vehicle)
    if data is not None:
        payload["data"] = data
    event = OutboxEvent(
        type=type_,
        vehicle_id=vehicle.id,
        client_id=vehicle.client_id,
        payload=payload,
        request_id=logconfig.current("request_id"),  # the request's log lines carry it too
    )
    session.add(event)
    note_event(vehicle)  # after commit: the relay is kicked, the vehicle's waiters woken
    return event
