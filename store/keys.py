"""The secret key against what is stored: does it read it (a canary), and re-encrypting
every encrypted value under the first key (a rotation).

A wrong key fails loudly, not silently: readiness says so, and web, worker and beat
refuse to start (each process checks at start with :func:`check_key`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy import Table, Text, literal, select, tuple_, type_coerce, update
from sqlalchemy.engine import Engine

from store.crypto import Encrypted, SecretKeyError, decrypt, rotate
from store.models import Base

__all__ = ["check_key", "encrypted_columns", "rotate_all"]


def encrypted_columns() -> Iterator[tuple[Table, list[str]]]:
    """Every table with encrypted columns, and those columns."""
    for table in Base.metadata.sorted_tables:
        names = [c.name for c in table.columns if isinstance(c.type, Encrypted)]
        if names:
            yield table, names


# The canaries: small tables, so that a readiness probe costs a few index-free reads of
# a handful of rows, never a scan of the vehicles.
_CANARIES = ("clients", "provider_credentials", "app_tokens", "webhook_endpoints")


def check_key(engine: Engine) -> None:
    """Decrypt one stored value of each kind of the small tables (canaries):
    SecretKeyError, saying which, when the key does not read what is stored. An empty
    database passes."""
    with engine.connect() as conn:
        for table, names in encrypted_columns():
            if table.name not in _CANARIES:
                continue
            for name in names:
                column = table.c[name]
                stored = conn.execute(
                    select(type_coerce(column, Text)).where(column.is_not(None)).limit(1)
                ).scalar_one_or_none()
                if stored is None:
                    continue
                try:
                    decrypt(stored)
                except SecretKeyError as exc:
                    raise SecretKeyError(
                        f"CV_SECRET_KEY does not decrypt what is stored ({table.name}.{name})"
                    ) from exc


def rotate_all(
    engine: Engine, *, batch: int = 500, progress: Callable[[str, int], None] | None = None
) -> int:
    """Re-encrypt every encrypted value under the first key of CV_SECRET_KEY (the
    others still decrypt). Batched by primary key, each batch its own transaction, so an
    interrupted run is simply run again (re-encrypting a value twice is harmless).
    Returns the number of rows rewritten."""
    total = 0
    for table, names in encrypted_columns():
        key = list(table.primary_key.columns)
        done = 0
        last: tuple[object, ...] | None = None
        while True:
            with engine.begin() as conn:
                stmt = select(*key, *(type_coerce(table.c[n], Text) for n in names))
                if last is not None:  # keyset paging: constant cost however large
                    stmt = stmt.where(tuple_(*key) > tuple_(*(literal(v) for v in last)))
                rows = conn.execute(stmt.order_by(*key).limit(batch)).all()
                for row in rows:
                    ids, values = row[: len(key)], row[len(key) :]
                    new = {n: rotate(v) for n, v in zip(names, values, strict=True) if v}
                    if new:
                        where = [c == i for c, i in zip(key, ids, strict=True)]
                        stored = {n: type_coerce(v, Text) for n, v in new.items()}
                        conn.execute(update(table).where(*where).values(**stored))
                if rows:
                    last = tuple(rows[-1][: len(key)])
            done += len(rows)
            if progress is not None and rows:
                progress(table.name, done)
            if len(rows) < batch:
                break
        total += done
    return total
