"""Where a worker gets the adapter of a vehicle's provider: the client's credentials
(cached per process), the settings' timeout, the shared app-token store, and the retry
policy of the step's attempt."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from providers import Adapter, RetryPolicy, adapter_for
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle
from workflows.app_tokens import StoredAppTokens
from workflows.errors import DomainError, ErrorCode
from workflows.provider_credentials import credentials_for

__all__ = ["adapter_of"]


def adapter_of(
    db: Database,
    session: Session,
    settings: Settings,
    vehicle: ConnectedVehicle,
    transport: httpx.BaseTransport | None,
    *,
    attempts: int | None = None,
) -> Adapter:
    """`attempts`: failed attempts before this one (default: the vehicle's step's)."""
    credentials = credentials_for(session, vehicle.client_id, vehicle.provider)
    if credentials is None:
        raise DomainError(ErrorCode.CONNECT_PROVIDER_NOT_ALLOWED, provider=vehicle.provider)
    return adapter_for(
        vehicle.provider,
        credentials,
        timeout=settings.provider_timeout_seconds,
        transport=transport,
        token_cache=StoredAppTokens(db),
        policy=RetryPolicy.of(settings).for_attempt(
            vehicle.attempts or 0 if attempts is None else attempts
        ),
    )
