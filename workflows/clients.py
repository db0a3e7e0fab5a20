"""Clients, as operators set them up (``cv client …``): a client and its signing secret,
and the pages of the client's its users may be sent back to after consent.

Its app at each provider is ``workflows.provider_credentials``; its users' tokens are
``workflows.user_tokens``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Client
from workflows.errors import DomainError, ErrorCode
from workflows.signing_secrets import forget_signing_secret

__all__ = [
    "add_redirect_uri",
    "check_redirect_uri",
    "create_client",
    "remove_redirect_uri",
    "rotate_signing_secret",
]


def create_client(session: Session, name: str, client_id: str | None = None) -> Client:
    client = Client(
        id=client_id or "cli_" + secrets.token_hex(8),
        name=name,
        signing_secret=secrets.token_urlsafe(32),
    )
    session.add(client)
    session.commit()
    return client


def rotate_signing_secret(
    session: Session, client_id: str, grace: timedelta = timedelta(0)
) -> Client:
    """A new signing secret. Tokens signed with the previous one are accepted for `grace`
    more (the client's servers switch over meanwhile), then refused; with no grace, from
    now on (in this process at once; in others within their cache's TTL)."""
    client = session.get(Client, client_id, with_for_update=True)
    if client is None:
        raise LookupError(f"no client {client_id!r}")
    client.previous_signing_secret = client.signing_secret if grace else None
    client.previous_secret_expires_at = datetime.now(UTC) + grace if grace else None
    client.signing_secret = secrets.token_urlsafe(32)
    session.commit()
    forget_signing_secret(client_id)  # again after commit: a read in between saw the old one
    return client


def _absolute(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(uri) > 1000:
        raise DomainError(
            ErrorCode.BAD_USER_INPUT,
            message="redirect_uri must be an absolute http(s) URL of at most 1000 characters",
        )
    return uri


def add_redirect_uri(session: Session, client_id: str, uri: str) -> Client:
    """Register a page of the client's its users may be sent back to."""
    client = session.get(Client, client_id, with_for_update=True)
    if client is None:
        raise LookupError(f"no client {client_id!r}")
    uri = _absolute(uri)
    if uri not in client.redirect_uris:
        client.redirect_uris = [*client.redirect_uris, uri]
    session.commit()
    return client


def remove_redirect_uri(session: Session, client_id: str, uri: str) -> Client:
    client = session.get(Client, client_id, with_for_update=True)
    if client is None:
        raise LookupError(f"no client {client_id!r}")
    client.redirect_uris = [u for u in client.redirect_uris if u != uri]
    session.commit()
    return client


def check_redirect_uri(session: Session, client_id: str, uri: str | None) -> str | None:
    """`uri` when the client registered it (exactly), else BAD_USER_INPUT: the service
    must not send a user who just consented to a page an attacker chose."""
    if uri is None:
        return None
    _absolute(uri)
    registered = session.execute(
        select(Client.redirect_uris).where(Client.id == client_id)
    ).scalar_one_or_none()
    if uri not in (registered or []):
        raise DomainError(
            ErrorCode.BAD_USER_INPUT,
            message="redirect_uri is not one this client registered (cv client add-redirect-uri)",
        )
    return uri
