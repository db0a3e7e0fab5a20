"""A worker process's heartbeat (workers.heartbeat), in a process of its own as a worker
runs it: its row is written before any task and kept fresh every heartbeat, made again if
the sweep removed it, its suspicion cleared; its claims are signed only once a beat went
through; a clean stop removes the row. A database away is said once, not per beat."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from harness.procs import BIN, ROOT
from store.db import Database
from store.models import WorkerHeartbeat, utcnow
from tests.helpers.wait import wait_until

HB = WorkerHeartbeat

# Drives the module from stdin, a line a command, and answers a line each.
DRIVER = """
import sys
from workers import heartbeat
from workflows import liveness
for line in sys.stdin:
    command = line.split()
    if command[0] == "start":
        answer = heartbeat.start(*command[1:])
    elif command[0] == "stop":
        heartbeat.stop()
        answer = "stopped"
    else:
        answer = liveness.process()
    print(answer, flush=True)
"""


class Beating:
    """A process whose heartbeat this test starts and stops."""

    def __init__(self, **env: str) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-c", DRIVER],
            cwd=ROOT,
            env={**os.environ, "CV_HEARTBEAT_SECONDS": "0.2", **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def end(self) -> str:
        """Its standard error, once it exited (its stdin closed: the driver's loop ends)."""
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def beating(clean: Database) -> Iterator[Beating]:
    process = Beating()
    yield process
    if process.proc.poll() is None:
        process.proc.kill()
    process.proc.communicate(timeout=30)  # reaped, and its three pipes closed
    with clean.engine.begin() as conn:  # whatever a failed test left
        conn.execute(delete(HB).where(HB.id.like("hb-test/%")))


def beat_at(db: Database, identity: str) -> datetime | None:
    with db.session() as session:
        return session.execute(select(HB.beat_at).where(HB.id == identity)).scalar_one_or_none()


def test_a_process_beats_before_any_task_and_signs_its_claims_from_then_on(
    clean: Database, beating: Beating
) -> None:
    assert beating.ask("process") == "None"  # not beating: claims unsigned

    identity = beating.ask("start hb-test")

    assert identity.startswith("hb-test/")
    assert beat_at(clean, identity) is not None  # written before start() returned
    assert beating.ask("process") == identity
    assert beating.ask("start hb-test") == identity  # once per process


def test_the_row_is_kept_fresh_every_heartbeat(clean: Database, beating: Beating) -> None:
    identity = beating.ask("start hb-test")
    first = beat_at(clean, identity)
    assert first is not None

    wait_until(lambda: (beat_at(clean, identity) or first) > first, timeout=5)


def test_a_row_the_sweep_removed_is_made_again_and_a_suspicion_cleared(
    clean: Database, beating: Beating
) -> None:
    identity = beating.ask("start hb-test")
    with clean.engine.begin() as conn:
        conn.execute(delete(HB).where(HB.id == identity))
    wait_until(lambda: beat_at(clean, identity) is not None, timeout=5)

    with clean.engine.begin() as conn:
        conn.execute(
            update(HB).where(HB.id == identity).values(suspected_at=utcnow() - timedelta(minutes=1))
        )

    def cleared() -> bool:
        with clean.session() as session:
            row = session.get(HB, identity, populate_existing=True)
            return row is not None and row.suspected_at is None

    wait_until(cleared, timeout=5)


def test_a_clean_stop_removes_the_row_and_signs_no_more(clean: Database, beating: Beating) -> None:
    identity = beating.ask("start hb-test")

    assert beating.ask("stop") == "stopped"

    assert beat_at(clean, identity) is None
    assert beating.ask("process") == "None"


def test_a_database_away_is_said_once_and_claims_stay_unsigned() -> None:
    process = Beating(CV_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        identity = process.ask("start hb-test")
        assert identity.startswith("hb-test/")  # started anyway: the worker goes on
        time.sleep(1.0)  # five beats, each failing
        signed = process.ask("process")
        process.ask("stop")
    finally:
        said = process.end()

    assert signed == "None"  # no beat went through: its claims are not signed
    assert said.count("heartbeat: a beat failed (OperationalError); trying again") == 1, said
    assert f"heartbeat: could not remove {identity} (OperationalError)" in said
