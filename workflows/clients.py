"""Clients: their signing secrets, their provider credentials, their users' tokens.

A user token is a JWT (HS256, PyJWT) signed with the client's signing secret: ``sub`` is
the user's id, ``exp`` is required.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from providers import Credentials, Provider
from store.models import Client, ProviderCredentials
from workflows.errors import DomainError, ErrorCode

__all__ = [
    "Principal",
    "SigningSecrets",
    "add_redirect_uri",
    "check_redirect_uri",
    "create_client",
    "credentials_for",
    "forget_signing_secret",
    "mint_user_token",
    "remove_redirect_uri",
    "rotate_signing_secret",
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


# A client's provider credentials, decrypted, kept by each process for a short while: a
# provider step reads them on every attempt. Set here, they are forgotten at once; set by
# another process (the operators' tool), they are seen within this time.
CREDENTIALS_TTL_SECONDS = 30.0
_credentials: dict[tuple[str, str], tuple[float, Credentials]] = {}


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


def mint_user_token(
    client: Client, user_id: str, ttl: timedelta = timedelta(hours=1), *, admin: bool = False
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if admin:
        claims["admin"] = True
    return jwt.encode(claims, client.signing_secret, algorithm="HS256")


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


# A user token may live at most this long (SPEC §3): one minted for the year 9999 is a
# credential that never ends. CV_USER_TOKEN_MAX_SECONDS; a minute of clock skew allowed.
MAX_TOKEN_LIFETIME = 24 * 3600.0
_SKEW = 60.0


def _check(
    client_id: str, signing_secret: str, token: str, max_lifetime: float = MAX_TOKEN_LIFETIME
) -> Principal:
    """The JWT itself, checked on every request (only the secret is ever cached)."""
    try:
        claims = jwt.decode(
            token,
            signing_secret,
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
    if float(claims["exp"]) > time.time() + max_lifetime + _SKEW:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)  # lives longer than allowed
    return Principal(client_id=client_id, user_id=sub, admin=claims.get("admin") is True)


@dataclass(frozen=True)
class _Keys:
    """What verifies a client's tokens: its secret, and during a rotation's grace the
    previous one too."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    @classmethod
    def of(cls, client: Client) -> _Keys:
        return cls(
            client.signing_secret, client.previous_signing_secret, client.previous_secret_expires_at
        )

    def live(self) -> list[str]:
        keys = [self.current]
        until = self.previous_until
        if self.previous and until is not None and until > datetime.now(UTC):
            keys.append(self.previous)
        return keys


def _check_keys(client_id: str, keys: _Keys, token: str, max_lifetime: float) -> Principal:
    """`_check` with each live key in turn: a token signed with the previous secret
    during its grace is accepted; expired beats invalid when a key's signature held."""
    error: DomainError | None = None
    for key in keys.live():
        try:
            return _check(client_id, key, token, max_lifetime)
        except DomainError as exc:
            if error is None or exc.code is ErrorCode.AUTH_TOKEN_EXPIRED:
                error = exc
    assert error is not None
    raise error


def verify_user_token(
    session: Session,
    client_id: str | None,
    token: str | None,
    max_lifetime: float = MAX_TOKEN_LIFETIME,
) -> Principal:
    """The caller, or AUTH_TOKEN_EXPIRED / AUTH_TOKEN_INVALID."""
    if not client_id or not token:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
    client = session.get(Client, client_id)
    if client is None:
        raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
    return _check_keys(client.id, _Keys.of(client), token, max_lifetime)


# Every live cache of this process, so that a change of a secret reaches all of them.
_caches: weakref.WeakSet[SigningSecrets] = weakref.WeakSet()


def forget_signing_secret(client_id: str) -> None:
    for cache in list(_caches):
        cache.forget(client_id)


@event.listens_for(Client.signing_secret, "set")
def _secret_changed(target: Client, value: Any, old: Any, initiator: Any) -> None:
    if target.id is not None:
        forget_signing_secret(target.id)


class SigningSecrets:
    """Clients' signing secrets, decrypted, kept per process: a request is verified
    without reading and decrypting the client's row (the JWT is still checked each time).

    Staleness is bounded by a small TTL plus explicit invalidation (no version column:
    checking one would cost the very read this saves). A change of `signing_secret`
    through the ORM in this process (rotate_signing_secret) forgets the entry at once.
    A change made by another process (the CLI, another web process) is seen within `ttl`;
    and at once by tokens signed with the new secret, because a bad signature against a
    cached secret re-reads the client (at most once a second per client, so forged tokens
    cannot turn every request into a database read).
    """

    REREAD_AFTER = 1.0

    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_lifetime: float = MAX_TOKEN_LIFETIME,
    ) -> None:
        self.ttl = ttl
        self.max_lifetime = max_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, tuple[_Keys, float]] = {}  # client id → (keys, read at)
        _caches.add(self)

    def verify(self, client_id: str | None, token: str | None) -> Principal | None:
        """The caller, from the cached secret, with no I/O; None when the client must be
        read from the database first (verify_from)."""
        if not client_id or not token:
            raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
        with self._lock:
            entry = self._secrets.get(client_id)
        if entry is None:
            return None
        keys, read_at = entry
        age = self._clock() - read_at
        if age >= self.ttl:
            return None
        try:
            return _check_keys(client_id, keys, token, self.max_lifetime)
        except DomainError as exc:
            if exc.code is ErrorCode.AUTH_TOKEN_INVALID and age >= self.REREAD_AFTER:
                return None  # perhaps signed with a secret newer than ours: read again
            raise

    def verify_from(self, session: Session, client_id: str | None, token: str | None) -> Principal:
        """Read the client (and cache its secret), then verify."""
        if not client_id or not token:
            raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
        read_at = self._clock()
        client = session.get(Client, client_id)
        if client is None:
            self.forget(client_id)
            raise DomainError(ErrorCode.AUTH_TOKEN_INVALID)
        keys = _Keys.of(client)
        with self._lock:
            self._secrets[client_id] = (keys, read_at)
        return _check_keys(client.id, keys, token, self.max_lifetime)

    def forget(self, client_id: str | None = None) -> None:
        with self._lock:
            if client_id is None:
                self._secrets.clear()
            else:
                self._secrets.pop(client_id, None)
