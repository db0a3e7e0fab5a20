"""Clients: their signing secrets, their provider credentials, their users' tokens.

A user token is a JWT (HS256, PyJWT) signed with the client's signing secret: ``sub`` is
the user's id, ``exp`` is required.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy.orm import Session

from providers import Credentials, Provider
from store.models import Client, ProviderCredentials
from workflows.errors import DomainError, ErrorCode

__all__ = [
    "Principal",
    "create_client",
    "credentials_for",
    "mint_user_token",
    "set_provider_credentials",
    "verify_user_token",
]


@dataclass(frozen=True)
class Principal:
    """Who calls: a client, and one of its users."""

    client_id: str
    user_id: str
    admin: bool = False  # the token carries `admin: true`: it may manage the client


def create_client(session: Session, name: str, client_id: str | None = None) -> Client:
    client = Client(
        id=client_id or "cli_" + secrets.token_hex(8),
        name=name,
        signing_secret=secrets.token_urlsafe(32),
    )
    session.add(client)
    session.commit()
    return client


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


def credentials_for(session: Session, client_id: str, provider: str) -> Credentials | None:
    row = session.get(ProviderCredentials, (client_id, provider))
    if row is None:
        return None
    return Credentials(row.oauth_client_id, row.oauth_client_secret, row.base_url)


def mint_user_token(
    client: Client, user_id: str, ttl: timedelta = timedelta(hours=1), *, admin: bool = False
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if admin:
        claims["admin"] = True
    return jwt.encode(claims, client.signing_secret, algorithm="HS256")


def verify_user_token(session: Session, client_id: str | None, token: str | None) -> Principal:
    """The caller, or AUTH_TOKEN_EXPIRED / AUTH_TOKEN_INVALID."""
    if not client_id or not token:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
    client = session.get(Client, client_id)
    if client is None:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
    try:
        claims = jwt.decode(
            token,
            client.signing_secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise DomainError(ErrorCode.AUTH_TOKEN_EXPIRED) from exc
    except jwt.InvalidTokenError as exc:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID) from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
    return Principal(client_id=client.id, user_id=sub, admin=claims.get("admin") is True)
