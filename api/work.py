"""A unit of database work run from the edge (GraphQL resolvers, the OAuth callback, the
operators' endpoints, providers' webhooks), in a worker thread: never on the event loop.

Two faults get an answer of their own instead of an internal error (SPEC §6):
- the database going away: the work runs again once on a fresh connection when nothing
  was committed (`Database.run`); still away, SERVICE_UNAVAILABLE (503, retryable);
- a vehicle that cannot be read (a key the service no longer holds): the row is marked
  for operators once the work's transaction has ended, and the error is
  CONNECTED_VEHICLE_UNREADABLE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session

from store.db import Database, DatabaseAway
from workflows import unreadable
from workflows.errors import DomainError, ErrorCode

__all__ = ["ServiceUnavailable", "run"]

T = TypeVar("T")


class ServiceUnavailable(DomainError):
    """The database stayed away: nothing was done (or, when `done_unknown`, a commit's
    outcome was lost with the connection). The caller may ask again."""

    def __init__(self, *, done_unknown: bool = False) -> None:
        super().__init__(ErrorCode.SERVICE_UNAVAILABLE)
        self.done_unknown = done_unknown


async def run(db: Database, work: Callable[[Session], T], *, tries: int = 2) -> T:
    """`work(session)` in a worker thread (see the module's docstring)."""
    try:
        return await anyio.to_thread.run_sync(
            functools.partial(unreadable.run, db, work, tries=tries)
        )
    except DatabaseAway as exc:
        raise ServiceUnavailable(done_unknown=exc.done_unknown) from exc
