"""The sweeper, on PostgreSQL and SQLite, with a clock given to it: what is stalled is
re-driven once per deadline, a dead worker's claims fail AUTHORIZATION_INTERRUPTED (the
code never sent again) and the steps it may have held are re-driven, abandoned
authorizations expire, and work in progress is left alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, text

from settings import Settings
from store.db import Database
from store.models import WorkerHeartbeat, utcnow
from tests.helpers.store import add_vehicle, bulk_vehicles, events_of, vehicle_row
from workflows import liveness
from workflows.clients import create_client
from workflows.liveness import abandoned_claims_query
from workflows.steps import Step
from workflows.sweep import (
    expired_query,
    refresh_due_query,
    stalled_query,
    sweep,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=utcnow().tzinfo)


@pytest.fixture
def rules(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "stall_seconds": 60,
            "claim_timeout_seconds": 300,
            "pending_ttl_seconds": 3600,
            "worker_dead_seconds": 10,
            "heartbeat_seconds": 3,
        }
    )


@pytest.fixture
def workers_beat(any_db: Database) -> Iterator[Callable[..., None]]:
    """Worker processes (by id) whose last heartbeat was that many seconds before NOW;
    removed after the test (the suite's own worker beats in the same table)."""
    made: list[str] = []

    def beat(**last_beats: float) -> None:
        with any_db.session() as session:
            for identity, age in last_beats.items():
                when = NOW - timedelta(seconds=age)
                session.add(WorkerHeartbeat(id=identity, started_at=when, beat_at=when))
                made.append(identity)
            session.commit()

    yield beat
    with any_db.session() as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id.in_(made)))
        session.commit()


def given(db: Database, *, age: float, **fields: object) -> str:
    """A pending vehicle created `age` seconds before NOW, with the given fields."""
    when = NOW - timedelta(seconds=age)
    return add_vehicle(db, created_at=when, pending_since=when, **fields)


def test_a_stalled_step_is_redriven_once_per_deadline(any_db: Database, rules: Settings) -> None:
    stalled = given(any_db, age=120, step="validate", step_due_at=NOW - timedelta(seconds=61))
    fresh = given(any_db, age=120, step="validate", step_due_at=NOW - timedelta(seconds=30))

    first = sweep(any_db, rules, now=NOW)
    again = sweep(any_db, rules, now=NOW + timedelta(seconds=31))
    later = sweep(any_db, rules, now=NOW + timedelta(seconds=61))

    assert first.redrive == [(stalled, Step.validate)]
    assert again.redrive == [(fresh, Step.validate)]
    assert later.redrive == [(stalled, Step.validate)]


LATER = NOW + timedelta(seconds=7)  # two heartbeats (3 s) after a suspicion at NOW


def test_a_dead_workers_claim_is_interrupted_never_released(
    any_db: Database, rules: Settings, workers_beat: Callable[..., None]
) -> None:
    """A killed worker may have sent the code: its vehicle fails AUTHORIZATION_INTERRUPTED
    (retryable) as soon as the worker is found dead (silent for the dead time at one
    pass, still silent two heartbeats later), not after the claim timeout, and the code
    is never claimed again. A claim signed by a process with no row at all is taken at
    once; a live worker's claim is left alone; an unsigned one waits for the timeout."""
    workers_beat(dead=20, live=1)

    def claimed(age: float, by: str | None) -> str:
        return given(
            any_db,
            age=600,
            step="validate",
            step_due_at=NOW - timedelta(seconds=age),
            auth_code="c",
            code_claimed_at=NOW - timedelta(seconds=age),
            code_claimed_by=by,
        )

    of_the_dead = claimed(20, "dead")
    of_one_never_seen = claimed(20, "gone-without-a-trace")
    just_claimed_by_the_dead = claimed(1, "dead")  # younger than the dead time: not yet
    of_the_living = claimed(290, "live")
    unsigned_young, unsigned_old = claimed(200, None), claimed(301, None)

    first = sweep(any_db, rules, now=NOW)  # "dead" is only suspected yet
    second = sweep(any_db, rules, now=LATER)

    assert (first.claims_interrupted, first.dead_workers) == (2, 0)
    assert (second.claims_interrupted, second.dead_workers) == (1, 1)
    for vehicle_id in (of_the_dead, of_one_never_seen, unsigned_old):
        row = vehicle_row(any_db, vehicle_id)
        assert (row.status, row.failure_code, row.failure_retryable) == (
            "failed",
            "AUTHORIZATION_INTERRUPTED",
            True,
        )
        assert (row.auth_code, row.code_claimed_at, row.code_claimed_by) == (None, None, None)
        assert row.step is None
        assert events_of(any_db, vehicle_id) == ["connected_vehicle.failed"]
    for vehicle_id in (just_claimed_by_the_dead, of_the_living, unsigned_young):
        row = vehicle_row(any_db, vehicle_id)
        assert (row.status, row.auth_code) == ("pending", "c")
        assert row.code_claimed_at is not None
    assert (of_the_dead, Step.validate) not in second.redrive  # failed, not re-driven


def test_a_worker_that_beats_again_is_not_taken_for_dead(
    any_db: Database, rules: Settings, workers_beat: Callable[..., None]
) -> None:
    """Silenced for a while (the database away, a clock that runs late), then beating
    again: the suspicion is cleared, its claims and steps are left alone."""
    workers_beat(quiet=20)
    claim = given(
        any_db,
        age=600,
        step="validate",
        step_due_at=NOW - timedelta(seconds=30),
        auth_code="c",
        code_claimed_at=NOW - timedelta(seconds=30),
        code_claimed_by="quiet",
    )

    sweep(any_db, rules, now=NOW)  # suspected
    liveness.beat(any_db.engine, "quiet", now=NOW - timedelta(seconds=15))  # late clock
    report = sweep(any_db, rules, now=LATER)

    assert (report.dead_workers, report.claims_interrupted) == (0, 0)
    assert vehicle_row(any_db, claim).code_claimed_at is not None


def test_a_dead_workers_steps_are_redriven_at_once_and_once(
    any_db: Database, rules: Settings, workers_beat: Callable[..., None]
) -> None:
    """Steps due before a dead worker's last beat may have been its own (reserved or
    running): re-driven once it is found dead, not after the stall deadline; its
    heartbeat is then removed, so the next pass does not re-drive them again. A live
    worker's are left."""
    workers_beat(dead=20, live=1)
    held = given(any_db, age=120, step="validate", step_due_at=NOW - timedelta(seconds=25))
    later = given(any_db, age=120, step="validate", step_due_at=NOW - timedelta(seconds=10))

    first = sweep(any_db, rules, now=NOW)
    second = sweep(any_db, rules, now=LATER)
    again = sweep(any_db, rules, now=LATER + timedelta(seconds=1))

    assert (first.dead_workers, first.redrive) == (0, [])
    assert second.dead_workers == 1
    assert second.redrive == [(held, Step.validate)]
    assert (again.dead_workers, again.redrive) == (0, [])
    with any_db.session() as session:
        left = {w.id for w in session.query(WorkerHeartbeat)}
    assert "live" in left and "dead" not in left
    assert vehicle_row(any_db, later).step_due_at == NOW - timedelta(seconds=10)


def test_an_abandoned_authorization_expires(any_db: Database, rules: Settings) -> None:
    abandoned = given(any_db, age=3601)
    young = given(any_db, age=3000)
    validating = given(any_db, age=4000, step="validate", step_due_at=NOW)

    report = sweep(any_db, rules, now=NOW)

    assert report.expired == 1
    row = vehicle_row(any_db, abandoned)
    assert (row.status, row.failure_code, row.failure_retryable) == (
        "failed",
        "AUTHORIZATION_EXPIRED",
        False,
    )
    assert events_of(any_db, abandoned) == ["connected_vehicle.failed"]
    assert vehicle_row(any_db, young).status == "pending"
    assert vehicle_row(any_db, validating).status == "pending"


def test_sweepers_running_at_once_share_the_work(clean: Database, rules: Settings) -> None:
    ids = {
        given(clean, age=120, step="validate", step_due_at=NOW - timedelta(seconds=61))
        for _ in range(40)
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda _: sweep(clean, rules, now=NOW, batch=15), range(4)))
    redriven = [vehicle_id for r in reports for vehicle_id, _ in r.redrive]
    assert len(redriven) == len(set(redriven))  # none twice
    assert set(redriven) <= ids


def test_the_sweepers_questions_read_indexes_on_a_large_table(
    clean: Database, rules: Settings
) -> None:
    """EXPLAIN each query on 50,000 vehicles and events, nearly all of them done: no
    sequential scan."""
    with clean.session() as session:
        client = create_client(session, "Big")
    with clean.engine.begin() as conn:
        bulk_vehicles(conn, client.id, 50_000, fleet_user=None, pending_every=500)
        conn.execute(
            text(
                """
                INSERT INTO outbox_events (id, type, vehicle_id, client_id, payload,
                                           created_at, published_at)
                SELECT gen_random_uuid()::text, 'connected_vehicle.updated', 'v' || i,
                       :client, '{}', now(), CASE WHEN i % 500 = 0 THEN NULL ELSE now() END
                FROM generate_series(1, 50000) AS i
                """
            ),
            {"client": client.id},
        )
        conn.execute(text("ANALYZE connected_vehicles"))
        conn.execute(text("ANALYZE outbox_events"))
        from workers.relay import unpublished_query

        queries = [
            stalled_query(NOW, 500),
            expired_query(NOW, 500),
            abandoned_claims_query(rules, NOW, 500),
            refresh_due_query(NOW, 500),
            unpublished_query(500),
        ]
        for query in queries:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql)))
            # worker_heartbeats holds a row per worker process: read whole, as it should be
            large = [line for line in plan.splitlines() if "worker_heartbeats" not in line]
            assert not [line for line in large if "Seq Scan" in line], plan
            assert "Index" in plan, plan


def test_a_provider_webhook_left_unprocessed_is_processed_again(
    any_db: Database, rules: Settings
) -> None:
    from store.models import ProviderWebhook
    from workflows.clients import create_client

    with any_db.session() as session:
        client_id = create_client(session, "Acme").id
        rows = {
            key: ProviderWebhook(
                provider="Enode",
                delivery_key=key,
                client_id=client_id,
                body=[],
                received_at=NOW - timedelta(seconds=age),
                processed_at=processed,
            )
            for key, age, processed in [("old", 61, None), ("new", 5, None), ("done", 500, NOW)]
        }
        session.add_all(rows.values())
        session.commit()
        old_id = rows["old"].id

    assert sweep(any_db, rules, now=NOW).provider_webhooks == [old_id]


def test_tokens_due_for_a_refresh_get_their_step_once(any_db: Database, rules: Settings) -> None:
    """Beat's pass: what is due gets the refresh step (once: the step carries it now);
    what is not due yet, or already at a step, is left alone."""
    due = given(any_db, age=0, status="authorized", refresh_due_at=NOW - timedelta(seconds=1))
    later = given(any_db, age=0, status="authorized", refresh_due_at=NOW + timedelta(hours=1))
    busy = given(
        any_db,
        age=0,
        status="authorized",
        refresh_due_at=NOW - timedelta(seconds=1),
        step="refresh",
        step_due_at=NOW,
    )

    first = sweep(any_db, rules, now=NOW)
    again = sweep(any_db, rules, now=NOW + timedelta(seconds=1))

    assert (first.refreshes, again.refreshes) == (1, 0)
    row = vehicle_row(any_db, due)
    assert (row.step, row.attempts, row.refresh_due_at) == ("refresh", 0, None)
    assert vehicle_row(any_db, later).step is None
    assert vehicle_row(any_db, busy).refresh_due_at is not None  # its step sets the next


def test_a_pending_time_to_live_runs_from_when_it_became_pending(
    any_db: Database, rules: Settings
) -> None:
    """Reauthorized long after its creation: not expired at once; a label change does
    not extend it either."""
    reauthorized = add_vehicle(
        any_db, created_at=NOW - timedelta(days=30), pending_since=NOW - timedelta(seconds=10)
    )
    waiting = add_vehicle(
        any_db,
        created_at=NOW - timedelta(seconds=3601),
        pending_since=NOW - timedelta(seconds=3601),
        updated_at=NOW,  # its label changed a moment ago
    )

    assert sweep(any_db, rules, now=NOW).expired == 1
    assert vehicle_row(any_db, reauthorized).status == "pending"
    assert vehicle_row(any_db, waiting).failure_code == "AUTHORIZATION_EXPIRED"
