"""The clients' signing secrets kept per process (:class:`SigningSecrets`), what the
API's authentication verifies a request with, and how a change of a secret reaches every
such cache (:func:`forget_signing_secret`, and a SQLAlchemy listener on the column)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from store.models import Client
from workflows.errors import DomainError, ErrorCode
from workflows.user_tokens import MAX_TOKEN_LIFETIME, Principal, SigningKeys, check_token

__all__ = ["SigningSecrets", "forget_signing_secret"]

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
        self._secrets: dict[str, tuple[SigningKeys, float]] = {}  # client id → (keys, read at)
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
            return check_token(client_id, keys, token, self.max_lifetime)
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
        keys = SigningKeys.of(client)
        with self._lock:
            self._secrets[client_id] = (keys, read_at)
        return check_token(client.id, keys, token, self.max_lifetime)

    def forget(self, client_id: str | None = None) -> None:
        with self._lock:
            if client_id is None:
                self._secrets.clear()
            else:
                self._secrets.pop(client_id, None)
