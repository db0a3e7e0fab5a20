"""Providers' app tokens (client credentials), kept in the database so that every worker
shares one token until it expires instead of asking for its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.models import AppToken

__all__ = ["StoredAppTokens"]


class StoredAppTokens:
    """The :class:`providers.AppTokenCache` of the service: encrypted rows in `app_tokens`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> tuple[str, datetime] | None:
        with self._db.session() as session:
            row = session.get(AppToken, key)
            return None if row is None else (row.access_token, row.expires_at)

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        for _ in range(2):  # two workers may insert the same key at once: the loser updates
            with self._db.session() as session:
                row = session.get(AppToken, key) or AppToken(key=key)
                row.access_token = token
                row.expires_at = expires_at
                session.add(row)
                try:
                    session.commit()
                    return
                except IntegrityError:
                    session.rollback()
