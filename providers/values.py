"""The values an adapter trades in: the app's credentials at a provider, a user's tokens,
whose account to read, a vehicle as the provider describes it, and where an app's own
token is kept between jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["AccountRef", "AppTokenCache", "Credentials", "Tokens", "VehicleInfo"]


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    base_url: str | None = None

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"Credentials(client_id={self.client_id!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at!r})"

    def valid_for(self, seconds: float) -> bool:
        """Still valid `seconds` from now (a token without an expiry is trusted)."""
        if self.expires_at is None:
            return True
        return self.expires_at > datetime.now(UTC) + timedelta(seconds=seconds)


@dataclass(frozen=True)
class AccountRef:
    """Whose account to read: the user's tokens (code flow), or the provider-side user id
    that the service reads with its own app token (Enode)."""

    tokens: Tokens | None = None
    user_id: str | None = None

    def require_tokens(self) -> Tokens:
        if self.tokens is None:
            raise ValueError("this provider reads an account with the user's tokens")
        return self.tokens


@dataclass(frozen=True)
class VehicleInfo:
    id: str
    make: str
    model: str | None
    year: int | None
    vin: str | None


class AppTokenCache(Protocol):
    """Where an app's own (client-credentials) token is kept between jobs and workers."""

    def get(self, key: str) -> tuple[str, datetime] | None: ...

    def put(self, key: str, token: str, expires_at: datetime) -> None: ...
