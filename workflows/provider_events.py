"""Providers' webhooks: verified on the raw body before anything is parsed, stored once
(deduplicated by the provider's delivery id), then processed by a job, enqueued when the
delivery is committed.

What a delivery looks like, how it is signed and what it means is each provider's own
knowledge (its adapter: ``verify_webhook``, ``delivery_key``, ``parse_webhook``); here
the domain acts on what it tells:

- access lost (consent revoked, the car gone from the account): the vehicle is
  deauthorized with ACCESS_REVOKED;
- another vehicle on an account linked whole (Enode): deauthorized with
  CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED;
- the car's data: the snapshot is updated without a fetch (``workflows.data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from providers import ADAPTERS
from providers.names import Provider
from providers.webhooks import Happening, ProviderEvent
from store.db import Database
from store.models import ConnectedVehicle, ProviderCredentials, ProviderWebhook, utcnow
from workflows import data
from workflows.dispatch import note_task
from workflows.errors import ErrorCode
from workflows.machine import Lifecycle, Status
from workflows.registry import Job

__all__ = [
    "Received",
    "challenge_answer",
    "challenge_of",
    "is_delivery",
    "process",
    "receive",
    "signature_header",
    "verify",
]


def signature_header(name: str) -> tuple[Provider, str] | None:
    """The provider named in a webhook URL (``/webhooks/enode``) and the header its
    signature comes in; None when it sends this service no webhooks."""
    for provider, adapter in ADAPTERS.items():
        if provider.value.lower() == name.lower() and adapter.webhook_header:
            return provider, adapter.webhook_header
    return None


def verify(session: Session, provider: Provider, raw: bytes, header: str | None) -> str | None:
    """The client whose webhook secret signed `raw`, or None (forged or unsigned)."""
    if not header:
        return None
    adapter = ADAPTERS[provider]
    rows = session.execute(
        select(ProviderCredentials).where(
            ProviderCredentials.provider == provider.value,
            ProviderCredentials.webhook_secret.is_not(None),
        )
    ).scalars()
    for row in rows:
        assert row.webhook_secret is not None
        if adapter.verify_webhook(row.webhook_secret, raw, header):
            return row.client_id
    return None


def is_delivery(provider: Provider, body: Any) -> bool:
    """Whether a verified body has the shape of the provider's deliveries."""
    return ADAPTERS[provider].is_delivery(body)


def challenge_of(provider: Provider, body: Any) -> str | None:
    """The challenge of a verification request (answered, not stored), else None."""
    return ADAPTERS[provider].webhook_challenge(body)


def challenge_answer(session: Session, provider: Provider, client_id: str, challenge: str) -> str:
    row = session.get(ProviderCredentials, (client_id, provider.value))
    assert row is not None and row.webhook_secret is not None
    return ADAPTERS[provider].answer_challenge(row.webhook_secret, challenge)


@dataclass(frozen=True)
class Received:
    webhook_id: str
    duplicate: bool


def receive(
    session: Session, provider: Provider, client_id: str, raw: bytes, body: Any
) -> Received:
    """Store a verified delivery once; a replay of it is recognized, not stored again."""
    key = ADAPTERS[provider].delivery_key(raw, body)
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
        session.flush()
        note_task(session, Job.process_provider_webhook, row.id)  # once it is stored
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
    if not Lifecycle(session, vehicle).fire_if("deauthorize", error=error):
        return f"{vehicle.id}: {vehicle.status}, left alone"
    return f"{vehicle.id}: deauthorized ({error.value})"


def _apply(session: Session, client_id: str, provider: Provider, event: ProviderEvent) -> str:
    what = event.happening.value
    if event.happening is Happening.nothing:
        return f"{what}: {event.detail or 'nothing to do'}"
    if event.user_id:  # the provider's own user: one per connected vehicle (Enode)
        match = ConnectedVehicle.provider_user_id == event.user_id
    elif event.vehicle_id:
        match = ConnectedVehicle.provider_vehicle_id == event.vehicle_id
    else:
        return f"{what}: names no vehicle"
    vehicle = _connected(session, client_id, provider, match)
    if vehicle is None:
        return f"{what}: unknown vehicle"
    itself = event.vehicle_id is None or event.vehicle_id == vehicle.provider_vehicle_id
    if event.happening is Happening.vehicle_added:
        if itself:
            return f"{what}: the connected vehicle itself, nothing to do"
        # A link grants the whole maker account: a second car appeared on it.
        return _deauthorize(session, vehicle, ErrorCode.CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED)
    if not itself:
        return f"{what}: another vehicle of the account, nothing to do"
    if event.happening is Happening.access_lost:
        return _deauthorize(session, vehicle, ErrorCode.ACCESS_REVOKED)
    if event.data is None or not Lifecycle(session, vehicle).is_(Status.authorized):
        return f"{what}: {vehicle.id} is {vehicle.status}, left alone"
    data.store(session, vehicle, event.data, merge=True)
    return f"{what}: {vehicle.id}: snapshot updated"


def process(db: Database, webhook_id: str) -> str | None:
    """Apply a stored delivery once; returns what it did (None: done before)."""
    with db.session() as session:
        row = session.get(ProviderWebhook, webhook_id, with_for_update=True)
        if row is None or row.processed_at is not None:
            return None
        provider = Provider(row.provider)
        events = ADAPTERS[provider].parse_webhook(row.body)
        outcomes = [_apply(session, row.client_id, provider, e) for e in events]
        row.processed_at = utcnow()
        row.outcome = json.dumps(outcomes or ["not a delivery this service reads"])
        session.commit()
        return row.outcome
