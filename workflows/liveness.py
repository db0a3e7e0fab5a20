"""Which worker processes live, so that the sweep can tell what a dead one held from what
a live one is still doing (SPEC §6: a worker killed at any point never causes a code to
be sent twice).

A process that runs steps beats every ``CV_HEARTBEAT_SECONDS`` (a row of
``worker_heartbeats``, written by ``workers.heartbeat`` over a connection of its own)
and, once it has beaten, signs the codes it claims with its id. The sweep judges in two
passes, each on its own clock, so that neither clock skew between hosts nor a database
outage that silenced every worker at once takes a live worker for dead:

1. *suspected*: silent for ``CV_WORKER_DEAD_SECONDS`` by the sweeper's clock; the
   sweeper notes when it suspected it (`suspected_at`, its own clock again). Any beat
   clears the suspicion.
2. *dead*: still suspected two heartbeats later. Then:

- the steps due before its last beat may have been its own, reserved or running (on
  Redis their messages come back only after the visibility timeout): they are re-driven
  now, once; its row is removed;
- a code signed by a process that has no row any more may have left: its vehicle fails
  AUTHORIZATION_INTERRUPTED (retryable: the user consents again), never released into a
  second send. (A clean stop removes its row too, once its tasks have ended.)

A claim never signed (a process that never beat: a test calling a step in process, a
tool) is taken for abandoned after ``CV_CLAIM_TIMEOUT_SECONDS``, as is any claim that old.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, Select, delete, exists, insert, or_, select, text, update

from settings import Settings
from store.models import ConnectedVehicle, WorkerHeartbeat, utcnow

__all__ = [
    "abandoned_claims_query",
    "beat",
    "confirmed_dead_query",
    "forget",
    "new_identity",
    "process",
    "set_process",
    "suspects_query",
]

CV = ConnectedVehicle
HB = WorkerHeartbeat

# This process's heartbeat id, once it has beaten (None: it does not).
_process: str | None = None


def new_identity(name: str = "") -> str:
    """An id for this process: its host and pid, and a token of this boot (a pid comes
    back after a restart; this id never does)."""
    prefix = f"{name}/" if name else ""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


def set_process(identity: str | None) -> None:
    """From now on this process's claims are signed with `identity` (None: unsigned)."""
    global _process
    _process = identity


def process() -> str | None:
    """The id a claim made in this process is signed with, if it beats."""
    return _process


def beat(engine: Engine, identity: str, now: datetime | None = None) -> None:
    """One heartbeat: this process lives (its row made again if it was removed), and
    whatever suspicion the sweep had of it is cleared."""
    now = now or utcnow()
    with engine.begin() as conn:
        found = conn.execute(
            update(HB)
            .where(HB.id == identity)
            .values(beat_at=now, suspected_at=None)
            .execution_options(synchronize_session=False)
        )
        if not found.rowcount:
            conn.execute(insert(HB).values(id=identity, started_at=now, beat_at=now))


def forget(engine: Engine, identity: str) -> None:
    """A clean stop: its tasks have ended (or went back to the broker)."""
    with engine.begin() as conn:
        conn.execute(delete(HB).where(HB.id == identity))


def suspects_query(settings: Settings, now: datetime, limit: int) -> Select[HB]:
    """Processes silent for the dead time and not suspected yet."""
    silent_since = now - timedelta(seconds=settings.worker_dead_seconds)
    return (
        select(HB)
        .where(HB.beat_at < silent_since, HB.suspected_at.is_(None))
        .order_by(HB.beat_at)
        .limit(limit)
    )


def confirmed_dead_query(settings: Settings, now: datetime, limit: int) -> Select[HB]:
    """Processes suspected two heartbeats ago that have not beaten since (a beat clears
    the suspicion): dead, whatever the clocks say."""
    suspected_before = now - timedelta(seconds=2 * settings.heartbeat_seconds)
    return (
        select(HB).where(HB.suspected_at < suspected_before).order_by(HB.suspected_at).limit(limit)
    )


def abandoned_claims_query(
    settings: Settings, now: datetime, limit: int
) -> Select[ConnectedVehicle]:
    """Pending vehicles' codes claimed and not spent, whose process is gone (no row: it
    was found dead, or stopped), or claimed longer ago than the claim timeout. A claim
    younger than the dead time is never taken."""
    young = now - timedelta(seconds=settings.worker_dead_seconds)
    owner_known = exists().where(HB.id == CV.code_claimed_by)
    return (
        select(CV)
        .where(text("code_claimed_at IS NOT NULL AND access_token IS NULL"))  # partial index
        .where(CV.status == "pending", CV.code_claimed_at < young)
        .where(
            or_(
                CV.code_claimed_at < now - timedelta(seconds=settings.claim_timeout_seconds),
                CV.code_claimed_by.is_not(None) & ~owner_known,
            )
        )
        .order_by(CV.code_claimed_at)
        .limit(limit)
    )
