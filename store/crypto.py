"""Encryption at rest for tokens and secrets (Fernet, from `cryptography`).

The key is set once per process by :func:`store.db.open_database`. Several keys, comma
separated, allow rotation: the first encrypts, every one decrypts.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

__all__ = ["Encrypted", "SecretKeyError", "decrypt", "rotate", "use_key"]

_cipher: MultiFernet | None = None


class SecretKeyError(RuntimeError):
    """The encryption key is missing or malformed."""


def use_key(keys: str) -> None:
    global _cipher
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise SecretKeyError(
            "CV_SECRET_KEY is not set: it encrypts tokens at rest. "
            "Make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    try:
        _cipher = MultiFernet([Fernet(p.encode()) for p in parts])
    except ValueError as exc:
        raise SecretKeyError("CV_SECRET_KEY is not a valid Fernet key") from exc


def _require() -> MultiFernet:
    if _cipher is None:
        raise SecretKeyError("encryption key not configured: call store.db.open_database first")
    return _cipher


class Encrypted(TypeDecorator[str]):
    """A string column stored encrypted; the plain text exists only in memory."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _require().encrypt(str(value).encode()).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return _require().decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError("stored secret does not decrypt with CV_SECRET_KEY") from exc


def decrypt(stored: str) -> str:
    """The plain text of one stored value (as the column would give it), for a reader
    that decrypts row by row so that one bad value fails alone."""
    try:
        return _require().decrypt(stored.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError("stored secret does not decrypt with CV_SECRET_KEY") from exc


def rotate(stored: str) -> str:
    """`stored` re-encrypted under the first key (any key may decrypt it)."""
    try:
        return _require().rotate(stored.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError("stored secret does not decrypt with CV_SECRET_KEY") from exc
