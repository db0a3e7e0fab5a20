"""Engine and sessions. PostgreSQL in production and tests; SQLite for one machine.

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: it takes the database's
write lock at once, which is SQLite's stand-in for PostgreSQL's ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store import crypto

__all__ = ["DISPATCHER", "Database", "make_engine", "open_database"]


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            **kwargs,
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass(frozen=True)
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


# The key of a handle's dispatcher in its sessions' `info` (read by workflows.dispatch).
DISPATCHER = "cv.dispatcher"


def open_database(
    url: str,
    secret_key: str,
    *,
    dispatcher: Callable[[Any], None] | None = None,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> Database:
    """Connect, and set the key that encrypts tokens at rest for this process.

    `dispatcher` receives what each committed transaction of this handle's sessions set
    in motion (steps due, events recorded: see workflows.dispatch); without one, nothing
    is sent."""
    crypto.use_key(secret_key)
    engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
    info = {DISPATCHER: dispatcher} if dispatcher is not None else {}
    return Database(engine, sessionmaker(engine, expire_on_commit=False, info=info))
