"""Providers' webhooks: verified on the raw body before anything is parsed, stored once
(deduplicated by the provider's delivery id), then processed by a job.

- Enode: ``x-enode-signature: sha1=<hex HMAC-SHA1 of the body>``; the body is a JSON
  array of events. ``user:vehicle:discovered`` of another vehicle on a connected account
  means the account now holds two: the vehicle is deauthorized
  (CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED); ``user:vehicle:deleted`` of the vehicle
  deauthorizes it (ACCESS_REVOKED); ``enode:webhook:test`` does nothing.
- Smartcar: ``SC-Signature: <hex HMAC-SHA256 of the body>``; ``VERIFY`` is answered with
  the challenge's HMAC; a ``VEHICLE_ERROR`` that means lost access deauthorizes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from providers.names import Provider
from store.db import Database
from store.models import ConnectedVehicle, ProviderCredentials, ProviderWebhook, utcnow
from workflows.errors import ErrorCode
from workflows.machine import Lifecycle, Status

__all__ = ["Received", "challenge_answer", "process", "receive"]

# Smartcar error types that mean the service lost access to the vehicle.
_LOST_ACCESS = {"AUTHENTICATION", "PERMISSION", "CONNECTED_SERVICES_ACCOUNT"}


def _digest(provider: Provider, secret: str, raw: bytes) -> str:
    algorithm = hashlib.sha1 if provider is Provider.Enode else hashlib.sha256
    return hmac.new(secret.encode(), raw, algorithm).hexdigest()


def _claimed_signature(provider: Provider, header: str | None) -> str | None:
    if not header:
        return None
    if provider is Provider.Enode:
        return header[5:] if header.startswith("sha1=") else None
    return header.strip()


def verify(session: Session, provider: Provider, raw: bytes, header: str | None) -> str | None:
    """The client whose webhook secret signed `raw`, or None (forged or unsigned)."""
    claimed = _claimed_signature(provider, header)
    if not claimed:
        return None
    rows = session.execute(
        select(ProviderCredentials).where(
            ProviderCredentials.provider == provider.value,
            ProviderCredentials.webhook_secret.is_not(None),
        )
    ).scalars()
    for row in rows:
        assert row.webhook_secret is not None
        if hmac.compare_digest(_digest(provider, row.webhook_secret, raw), claimed):
            return row.client_id
    return None


def challenge_answer(session: Session, client_id: str, challenge: str) -> str:
    """Smartcar's VERIFY: the challenge's HMAC-SHA256 with the webhook secret."""
    row = session.get(ProviderCredentials, (client_id, Provider.Smartcar.value))
    assert row is not None and row.webhook_secret is not None
    return hmac.new(row.webhook_secret.encode(), challenge.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Received:
    webhook_id: str
    duplicate: bool


def receive(
    session: Session, provider: Provider, client_id: str, raw: bytes, body: Any
) -> Received:
    """Store a verified delivery once; a replay of it is recognized, not stored again."""
    key = None
    if provider is Provider.Smartcar and isinstance(body, dict):
        key = body.get("eventId")
    key = str(key or hashlib.sha256(raw).hexdigest())
    found = session.execute(
        select(ProviderWebhook.id).where(
            ProviderWebhook.provider == provider.value, ProviderWebhook.delivery_key == key
        )
    ).scalar_one_or_none()
    if found is not None:
        return Received(found, duplicate=True)
    row = ProviderWebhook(provider=provider.value, delivery_key=key, client_id=client_id, body=body)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # the same delivery, stored by a concurrent request
        session.rollback()
        return receive(session, provider, client_id, raw, body)
    return Received(row.id, duplicate=False)


def _connected(
    session: Session, client_id: str, provider: Provider, match: ColumnElement[bool]
) -> ConnectedVehicle | None:
    """The client's vehicle at `provider` that `match` names, locked (the newest, if the
    same car was connected more than once)."""
    return session.execute(
        select(ConnectedVehicle)
        .where(
            ConnectedVehicle.client_id == client_id,
            ConnectedVehicle.provider == provider.value,
            match,
        )
        .order_by(ConnectedVehicle.created_at.desc())
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()


def _deauthorize(session: Session, vehicle: ConnectedVehicle, error: ErrorCode) -> str:
    if vehicle.status != Status.authorized:
        return f"{vehicle.id}: {vehicle.status}, left alone"
    Lifecycle(session, vehicle).trigger_event("deauthorize", error=error)
    return f"{vehicle.id}: deauthorized ({error.value})"


def _enode(session: Session, client_id: str, events: list[dict[str, Any]]) -> list[str]:
    outcomes = []
    for event in events:
        kind = event.get("event")
        user_id = (event.get("user") or {}).get("id")
        vehicle_id = (event.get("vehicle") or {}).get("id")
        if kind not in ("user:vehicle:discovered", "user:vehicle:deleted") or not user_id:
            outcomes.append(f"{kind}: nothing to do")
            continue
        vehicle = _connected(
            session, client_id, Provider.Enode, ConnectedVehicle.provider_user_id == user_id
        )
        if vehicle is None:
            outcomes.append(f"{kind}: unknown Enode user")
        elif kind == "user:vehicle:discovered" and vehicle_id != vehicle.provider_vehicle_id:
            # A link grants the whole maker account: a second car appeared on it.
            error = ErrorCode.CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED
            outcomes.append(_deauthorize(session, vehicle, error))
        elif kind == "user:vehicle:deleted" and vehicle_id == vehicle.provider_vehicle_id:
            outcomes.append(_deauthorize(session, vehicle, ErrorCode.ACCESS_REVOKED))
        else:
            outcomes.append(f"{kind}: the connected vehicle itself, nothing to do")
    return outcomes


def _smartcar(session: Session, client_id: str, body: dict[str, Any]) -> list[str]:
    if body.get("eventType") != "VEHICLE_ERROR":
        return [f"{body.get('eventType')}: nothing to do"]
    data = body.get("data") or {}
    vehicle_id = (data.get("vehicle") or {}).get("id")
    errors = data.get("errors") or []
    lost = any(
        e.get("type") in _LOST_ACCESS or (e.get("resolution") or {}).get("type") == "REAUTHENTICATE"
        for e in errors
        if isinstance(e, dict)
    )
    if not lost or not vehicle_id:
        return ["VEHICLE_ERROR: access not lost"]
    vehicle = _connected(
        session, client_id, Provider.Smartcar, ConnectedVehicle.provider_vehicle_id == vehicle_id
    )
    if vehicle is None:
        return ["VEHICLE_ERROR: unknown vehicle"]
    return [_deauthorize(session, vehicle, ErrorCode.ACCESS_REVOKED)]


def process(db: Database, webhook_id: str) -> str | None:
    """Apply a stored delivery once; returns what it did (None: done before)."""
    with db.session() as session:
        row = session.get(ProviderWebhook, webhook_id, with_for_update=True)
        if row is None or row.processed_at is not None:
            return None
        if row.provider == Provider.Enode.value and isinstance(row.body, list):
            outcomes = _enode(session, row.client_id, row.body)
        elif row.provider == Provider.Smartcar.value and isinstance(row.body, dict):
            outcomes = _smartcar(session, row.client_id, row.body)
        else:
            outcomes = ["not a delivery this service reads"]
        row.processed_at = utcnow()
        row.outcome = json.dumps(outcomes)
        session.commit()
        return row.outcome
