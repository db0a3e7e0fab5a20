"""Providers' app tokens (client credentials), kept in the database so that every worker
shares one token until it expires instead of asking for its own, and in the process's
memory in front of it, so that a step does not spend a transaction to read it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.models import AppToken

__all__ = ["StoredAppTokens"]


class StoredAppTokens:
    """The :class:`providers.AppTokenCache` of the service: encrypted rows in `app_tokens`."""

    # This process's copies, by key. A copy is used while it has this long left; the
    # adapter asks for a fresh token anyway when the provider refuses the one it has.
    _memory: ClassVar[dict[str, tuple[str, datetime]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _margin: ClassVar[timedelta] = timedelta(seconds=60)

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> tuple[str, datetime] | None:
        hit = self._memory.get(key)
        if hit is not None and hit[1] > datetime.now(UTC) + self._margin:
            return hit
        with self._db.session() as session:
            row = session.get(AppToken, key)
            found = None if row is None else (row.access_token, row.expires_at)
        if found is not None:
            with self._lock:
                self._memory[key] = found
        return found

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        for _ in range(2):  # two workers may insert the same key at once: the loser updates
            with self._db.session() as session:
                row = session.get(AppToken, key) or AppToken(key=key)
                row.access_token = token
                row.expires_at = expires_at
                session.add(row)
                try:
                    session.commit()
                    with self._lock:
                        self._memory[key] = (token, expires_at)
                    return
                except IntegrityError:
                    session.rollback()
