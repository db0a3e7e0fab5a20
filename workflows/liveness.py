"""Which worker processes live, so that the sweep can tell what a dead one held from what
a live one is still doing (SPEC §6: a worker killed at any point never causes a code to
be sent twice).

A process that runs steps beats every ``CV_HEARTBEAT_SECONDS`` (a row of
``worker_heartbeats``, written by ``workers.heartbeat``) and signs the codes it claims
with its id. One silent for ``CV_WORKER_DEAD_SECONDS`` died (a kill, an OOM, a machine
lost):

- a code it claimed may have left: its vehicle fails AUTHORIZATION_INTERRUPTED
  (retryable: the user consents again), never released into a second send;
- the steps due before its last beat may have been its own, reserved or running (on
  Redis their messages come back only after the visibility timeout): they are re-driven
  now, once. A step some live worker also holds runs twice, which every step allows.

A claim whose process never beat (a test calling a step in process, a tool) is taken for
dead only after ``CV_CLAIM_TIMEOUT_SECONDS``, as before.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, exists, or_, select, text, update
from sqlalchemy.orm import Session

from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, WorkerHeartbeat, utcnow

__all__ = [
    "abandoned_claims_query",
    "beat",
    "dead_workers_query",
    "forget",
    "new_identity",
    "process",
    "set_process",
]

CV = ConnectedVehicle
HB = WorkerHeartbeat

# This process's heartbeat id, once it beats (None: it does not).
_process: str | None = None


def new_identity(name: str = "") -> str:
    """An id for this process: its host and pid, and a token of this boot (a pid comes
    back after a restart; this id never does)."""
    prefix = f"{name}/" if name else ""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


def set_process(identity: str | None) -> None:
    """From now on this process beats as `identity` (None: it stopped)."""
    global _process
    _process = identity


def process() -> str | None:
    """The id a claim made in this process is signed with, if it beats."""
    return _process


def beat(db: Database, identity: str, now: datetime | None = None) -> None:
    """One heartbeat: this process lives (its row made again if someone removed it)."""
    now = now or utcnow()
    with db.session() as session:
        found = session.execute(update(HB).where(HB.id == identity).values(beat_at=now))
        if not found.rowcount:  # type: ignore[attr-defined]
            session.add(HB(id=identity, started_at=now, beat_at=now))
        session.commit()


def forget(db: Database, identity: str) -> None:
    """A clean stop: nothing this process held is lost (its tasks finished or went back
    to the broker), so there is nothing to take back."""
    with db.session() as session:
        session.execute(delete(HB).where(HB.id == identity))
        session.commit()


def alive_since(settings: Settings, now: datetime) -> datetime:
    """A process that beat at or after this time lives."""
    return now - timedelta(seconds=settings.worker_dead_seconds)


def abandoned_claims_query(
    settings: Settings, now: datetime, limit: int
) -> Select[ConnectedVehicle]:
    """Codes claimed and not spent whose process died, or, unsigned, that waited past
    the claim timeout. (A claim younger than the dead time is never taken: its process
    may not have beaten yet.)"""
    alive = alive_since(settings, now)
    beating = exists().where(HB.id == CV.code_claimed_by, HB.beat_at >= alive)
    return (
        select(CV)
        .where(text("code_claimed_at IS NOT NULL AND access_token IS NULL"))  # partial index
        .where(CV.code_claimed_at < alive)
        .where(
            or_(
                CV.code_claimed_at < now - timedelta(seconds=settings.claim_timeout_seconds),
                (CV.code_claimed_by.is_not(None)) & ~beating,
            )
        )
        .order_by(CV.code_claimed_at)
        .limit(limit)
    )


def dead_workers_query(settings: Settings, now: datetime, limit: int) -> Select[HB]:
    """Processes that stopped beating without saying goodbye."""
    return (
        select(HB).where(HB.beat_at < alive_since(settings, now)).order_by(HB.beat_at).limit(limit)
    )


def remove(session: Session, worker: WorkerHeartbeat) -> None:
    """A dead worker taken care of (in the sweep's transaction)."""
    session.delete(worker)
