"""`Database.run`: a unit of work the database dropped before it asked for a commit runs
again on a fresh connection; one that asked for its commit does not (its outcome is
unknown), and says so. The connection is dropped for real: its backend terminated by
PostgreSQL, as a failover or `pg_terminate_backend` does."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from harness import admin_execute
from store.db import Database, DatabaseAway
from store.models import Client
from workflows.clients import create_client


def drop_my_connection(session: Session) -> None:
    pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin_execute(f"SELECT pg_terminate_backend({int(pid)})")


def clients(db: Database, name: str) -> int:
    with db.session() as session:
        return int(
            session.execute(
                select(func.count()).select_from(Client).where(Client.name == name)
            ).scalar_one()
        )


def first_try_dropped(action: Callable[[Session], object]) -> tuple[list[int], Callable]:
    tries: list[int] = []

    def work(session: Session) -> object:
        tries.append(len(tries) + 1)
        if len(tries) == 1:
            drop_my_connection(session)
        return action(session)

    return tries, work


def test_a_read_whose_connection_dropped_runs_again(clean: Database) -> None:
    tries, work = first_try_dropped(lambda s: s.execute(text("SELECT 41 + 1")).scalar_one())

    assert clean.run(work) == 42
    assert tries == [1, 2]


def test_a_write_dropped_in_its_commits_flush_runs_again_once(clean: Database) -> None:
    """The INSERT goes out in commit()'s flush, on a dead connection: nothing was
    committed, so the work runs again, and the row is there once."""

    def add(session: Session) -> None:
        session.add(Client(id=f"cli_again_{len(tries)}", name="run-again", signing_secret="s"))
        session.commit()

    tries, work = first_try_dropped(add)

    clean.run(work)

    assert tries == [1, 2]
    assert clients(clean, "run-again") == 1


def test_work_dropped_after_its_commit_is_not_run_again(clean: Database) -> None:
    tries: list[int] = []

    def work(session: Session) -> None:
        tries.append(1)
        create_client(session, "committed-once")  # commits
        drop_my_connection(session)
        session.execute(text("SELECT 1"))

    with pytest.raises(DatabaseAway) as away:
        clean.run(work)

    assert tries == [1]
    assert away.value.done_unknown
    assert clients(clean, "committed-once") == 1


def test_a_database_that_stays_away_is_database_away(clean: Database) -> None:
    tries: list[int] = []

    def work(session: Session) -> None:
        tries.append(1)
        drop_my_connection(session)
        session.execute(text("SELECT 1"))

    with pytest.raises(DatabaseAway) as away:
        clean.run(work, tries=3, pauses=(0.0,))

    assert tries == [1, 1, 1]
    assert not away.value.done_unknown
