"""Who calls (:class:`Principal`), as a user token says: minted for a client's user,
verified on every request.

A user token is a JWT (HS256, PyJWT) signed with the client's signing secret: ``sub`` is
the user's id, ``exp`` is required. During a rotation's grace the previous secret
verifies too (:class:`SigningKeys`); ``workflows.signing_secrets`` keeps the keys of each
client per process so that a request costs no read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy.orm import Session

from store.models import Client
from workflows.errors import DomainError, ErrorCode

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "Principal",
    "SigningKeys",
    "check_token",
    "mint_user_token",
    "verify_user_token",
]


@dataclass(frozen=True)
class Principal:
    """Who calls: a client, and one of its users."""

    client_id: str
    user_id: str
    admin: bool = False  # the token carries `admin: true`: it may manage the client


def mint_user_token(
    client: Client, user_id: str, ttl: timedelta = timedelta(hours=1), *, admin: bool = False
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if admin:
        claims["admin"] = True
    return jwt.encode(claims, client.signing_secret, algorithm="HS256")


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
class SigningKeys:
    """What verifies a client's tokens: its secret, and during a rotation's grace the
    previous one too."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    @classmethod
    def of(cls, client: Client) -> SigningKeys:
        return cls(
            client.signing_secret, client.previous_signing_secret, client.previous_secret_expires_at
        )

    def live(self) -> list[str]:
        keys = [self.current]
        until = self.previous_until
        if self.previous and until is not None and until > datetime.now(UTC):
            keys.append(self.previous)
        return keys


def check_token(client_id: str, keys: SigningKeys, token: str, max_lifetime: float) -> Principal:
    """The JWT checked with each live key in turn: a token signed with the previous
    secret during its grace is accepted; expired beats invalid when a key's signature
    held."""
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
    return check_token(client.id, SigningKeys.of(client), token, max_lifetime)
