"""Client webhook endpoints, as the API (a client's administrators) and operators manage
them: registered with their event types, their secret rotated, deleted; and a delivery
replayed. Deliveries are made by ``workflows.webhook_fanout`` and sent by
``workflows.webhook_delivery``."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from store.models import WebhookDelivery, WebhookEndpoint, utcnow
from workflows.dispatch import note_task
from workflows.egress import UnsafeURL, target_of
from workflows.errors import DomainError, ErrorCode
from workflows.registry import Job

__all__ = ["EVENT_TYPES", "create_endpoint", "delete_endpoint", "replay", "rotate_secret"]

EVENT_TYPES = (
    "connected_vehicle.created",
    "connected_vehicle.updated",
    "connected_vehicle.pending",
    "connected_vehicle.authorized",
    "connected_vehicle.failed",
    "connected_vehicle.pending_removal",
    "connected_vehicle.removed",
    "connected_vehicle.deauthorized",
    "connected_vehicle.data_updated",  # a new snapshot of the car's data
)
ROTATION_GRACE = timedelta(hours=24)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check(url: str, event_types: list[str], allow_private: bool) -> None:
    if len(url) > 1000:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="url is longer than 1000 characters")
    try:
        target_of(url, allow_private=allow_private)  # SPEC §4: checked again at delivery
    except UnsafeURL as exc:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message=str(exc)) from exc
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT, message=f"unknown event types: {', '.join(unknown)}"
        )


def create_endpoint(
    session: Session,
    client_id: str,
    url: str,
    event_types: list[str] | None = None,
    *,
    allow_private: bool = False,
) -> WebhookEndpoint:
    """`allow_private`: CV_WEBHOOKS_ALLOW_PRIVATE (http and loopback, for development)."""
    types = list(dict.fromkeys(event_types or []))
    _check(url, types, allow_private)
    endpoint = WebhookEndpoint(
        client_id=client_id, url=url, secret=new_secret(), event_types=types, enabled=True
    )
    session.add(endpoint)
    session.commit()
    return endpoint


def _owned(session: Session, client_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.client_id != client_id:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="no such webhook endpoint")
    return endpoint


def rotate_secret(session: Session, client_id: str, endpoint_id: str) -> WebhookEndpoint:
    """A new secret; the old one signs too for a day, so receivers can switch over."""
    endpoint = _owned(session, client_id, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_GRACE
    endpoint.secret = new_secret()
    session.commit()
    return endpoint


def delete_endpoint(session: Session, client_id: str, endpoint_id: str) -> None:
    endpoint = _owned(session, client_id, endpoint_id)
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    session.commit()


def replay(session: Session, delivery_id: str) -> WebhookDelivery:
    """Send an exhausted (or any) delivery again, on a fresh schedule, with the same
    `webhook-id`; its past attempts stay on record."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="no such webhook delivery")
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise DomainError(ErrorCode.BAD_USER_INPUT, message="the endpoint is disabled")
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.updated_at = utcnow()
    note_task(session, Job.deliver_webhooks)  # sent now, not at the beat's next pass
    session.commit()
    return delivery
