"""OAuth states: random, single use, bound to one vehicle and client, expiring. Only a
state's SHA-256 is stored: a reader of the database cannot replay a flow in progress."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from settings import Settings
from store.models import ConnectedVehicle, OAuthState, utcnow

__all__ = ["hash_state", "new_state", "retire_states"]


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def new_state(
    session: Session,
    settings: Settings,
    vehicle: ConnectedVehicle,
    *,
    state: str | None = None,
    code_verifier: str | None = None,
) -> str:
    """Bind a state (new unless given) to the vehicle, in the caller's transaction."""
    state = state or secrets.token_urlsafe(32)
    session.add(
        OAuthState(
            state_hash=hash_state(state),
            vehicle_id=vehicle.id,
            client_id=vehicle.client_id,
            expires_at=utcnow() + timedelta(seconds=settings.pending_ttl_seconds),
            code_verifier=code_verifier,
        )
    )
    return state


def retire_states(session: Session, vehicle: ConnectedVehicle) -> None:
    """Every state of the vehicle not used yet is spent now (a new consent begins: a
    callback from an earlier flow must change nothing)."""
    session.execute(
        update(OAuthState)
        .where(OAuthState.vehicle_id == vehicle.id, OAuthState.used_at.is_(None))
        .values(used_at=utcnow())
    )
