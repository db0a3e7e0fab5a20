"""Engine and sessions. PostgreSQL in production and tests; SQLite for one machine.

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: it takes the database's
write lock at once, which is SQLite's stand-in for PostgreSQL's ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from store import crypto

__all__ = [
    "DATABASE_AWAY",
    "DISPATCHER",
    "Database",
    "DatabaseAway",
    "make_engine",
    "open_database",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# The database went away (a restart, a failover, a dropped connection) or every pooled
# connection is busy: a passing state, not a fault of the work. (A connection that died
# in the pool is replaced before use: pool_pre_ping below.)
DATABASE_AWAY: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeout,
)
# Set in a session's `info` once it asked for a commit: from then on, whether the work
# was done is unknown, and running it again is no longer safe.
_COMMIT_ASKED = "cv.commit_asked"


class DatabaseAway(Exception):
    """The database stayed away for every try of a unit of work (`Database.run`).
    `done_unknown`: a commit was asked for, so the work may have been done."""

    def __init__(self, cause: Exception, *, done_unknown: bool) -> None:
        super().__init__(f"the database is unavailable ({type(cause).__name__})")
        self.done_unknown = done_unknown


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

    def run(
        self, work: Callable[[Session], T], *, tries: int = 2, pauses: tuple[float, ...] = (0.05,)
    ) -> T:
        """`work(session)` in a session of its own. When the database goes away under it
        before it asked for a commit (its transaction rolled back, nothing was done) it
        runs again, on a fresh connection, up to `tries` times in all, after the next of
        `pauses` (the last repeats). Else DatabaseAway: the caller answers "try again"
        instead of an internal error."""
        for attempt in range(1, tries + 1):
            session = self.sessions()
            try:
                with session:
                    return work(session)
            except DATABASE_AWAY as exc:
                asked = bool(session.info.get(_COMMIT_ASKED))
                if asked or attempt == tries:
                    raise DatabaseAway(exc, done_unknown=asked) from exc
                pause = pauses[min(attempt, len(pauses)) - 1] if pauses else 0.0
                log.warning(
                    "database unavailable (%s); trying again in %.2fs",
                    type(getattr(exc, "orig", None) or exc).__name__,
                    pause,
                )
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

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
    sessions = sessionmaker(engine, expire_on_commit=False, info=info)
    event.listen(sessions, "before_commit", _note_commit_asked)
    return Database(engine, sessions)


def _note_commit_asked(session: Session) -> None:
    # Flushed first (what commit() would flush next): a statement the database drops
    # here has changed nothing yet, and the work may run again; from the COMMIT on, its
    # outcome is unknown.
    session.flush()
    session.info[_COMMIT_ASKED] = True
