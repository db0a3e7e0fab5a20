"""A client's app at each provider: set by operators (``cv client set-provider``), read by
every provider step (through a short per-process cache)."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from providers import Credentials, Provider
from store.models import Client, ProviderCredentials

__all__ = ["credentials_for", "set_provider_credentials"]

# A client's provider credentials, decrypted, kept by each process for a short while: a
# provider step reads them on every attempt. Set here, they are forgotten at once; set by
# another process (the operators' tool), they are seen within this time.
CREDENTIALS_TTL_SECONDS = 30.0
_credentials: dict[tuple[str, str], tuple[float, Credentials]] = {}


def set_provider_credentials(
    session: Session,
    client_id: str,
    provider: Provider,
    *,
    oauth_client_id: str,
    oauth_client_secret: str,
    base_url: str | None = None,
    webhook_secret: str | None = None,
) -> None:
    if session.get(Client, client_id) is None:
        raise LookupError(f"no client {client_id!r}")
    row = session.get(ProviderCredentials, (client_id, provider.value)) or ProviderCredentials(
        client_id=client_id, provider=provider.value
    )
    row.oauth_client_id = oauth_client_id
    row.oauth_client_secret = oauth_client_secret
    row.base_url = base_url
    if webhook_secret is not None:
        row.webhook_secret = webhook_secret
    session.add(row)
    session.commit()
    _credentials.pop((client_id, provider.value), None)


def credentials_for(session: Session, client_id: str, provider: str) -> Credentials | None:
    key = (client_id, provider)
    hit = _credentials.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    row = session.get(ProviderCredentials, key)
    if row is None:
        return None
    found = Credentials(row.oauth_client_id, row.oauth_client_secret, row.base_url)
    _credentials[key] = (time.monotonic() + CREDENTIALS_TTL_SECONDS, found)
    return found
