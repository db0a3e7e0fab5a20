"""What a transaction sets in motion is handed over once, after it commits: the steps due,
one relay kick, the vehicles to wake. Nothing for a transaction that rolls back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from harness.tenant import Tenant
from store.db import Database, open_database
from tests.helpers.run import SECRET_KEY
from tests.helpers.store import add_vehicle
from workers.after_commit import Wakeups
from workers.enqueue import Enqueuer
from workflows import steps
from workflows.dispatch import AfterCommit, listeners
from workflows.events import CHANGED, record_event
from workflows.registry import REGISTRY, Job
from workflows.steps import Step
from workflows.vehicles import lock

RELAY_TASK = Job.relay_outbox


@contextmanager
def handle(tenant: Tenant, dispatcher: Callable[[AfterCommit], None]) -> Iterator[Database]:
    """The test's database through a handle of its own, with `dispatcher`."""
    url = tenant.db.engine.url.render_as_string(hide_password=False)
    db = open_database(url, SECRET_KEY, dispatcher=dispatcher)
    try:
        yield db
    finally:
        db.engine.dispose()


@pytest.fixture
def handed(tenant: Tenant) -> Iterator[tuple[Database, list[AfterCommit]]]:
    """A handle whose dispatcher keeps what it is handed."""
    got: list[AfterCommit] = []
    with handle(tenant, got.append) as db:
        yield db, got


def test_a_commit_hands_over_its_steps_events_and_changes_once(handed) -> None:
    db, got = handed
    vehicle_id = add_vehicle(db)
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        assert vehicle is not None
        record_event(session, "connected_vehicle.updated", vehicle)
        record_event(session, "connected_vehicle.updated", vehicle)
        steps.schedule(vehicle, Step.validate)
        assert got == []  # nothing before the commit
        session.commit()
    assert got == [
        AfterCommit(
            steps=[(vehicle_id, "validate")],
            events=True,
            changed=[vehicle_id],
        )
    ]


def test_a_rollback_hands_over_nothing(handed) -> None:
    db, got = handed
    vehicle_id = add_vehicle(db)
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        assert vehicle is not None
        record_event(session, "connected_vehicle.updated", vehicle)
        steps.schedule(vehicle, Step.validate)
        session.rollback()
        session.commit()  # a later, empty transaction of the same session
    assert got == []


def test_a_step_cleared_before_the_commit_is_not_enqueued(handed) -> None:
    db, got = handed
    vehicle_id = add_vehicle(db)
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        assert vehicle is not None
        steps.schedule(vehicle, Step.validate)
        steps.clear(vehicle)
        session.commit()
    assert got == []


class FakeBroker:
    """Stands in for the Celery app: keeps what is sent (the Enqueuer is under test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], float | None]] = []

    def send_task(self, name: str, args: list[str], countdown: float | None = None, **_: Any):
        self.sent.append((name, args, countdown))


class FakeRedis:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def pipeline(self, transaction: bool = False) -> FakeRedis:
        return self

    def publish(self, channel: str, message: str) -> None:
        self.published.append((channel, message))

    def execute(self) -> None:
        pass


def test_the_enqueuer_sends_each_step_by_the_registry_and_debounces_the_relay() -> None:
    broker, events = FakeBroker(), FakeRedis()
    enqueuer = listeners(
        Enqueuer(broker, relay_debounce=0.2),
        Wakeups(lambda: events),  # type: ignore[arg-type,return-value]
    )

    enqueuer(
        AfterCommit(
            steps=[("v1", "validate"), ("v2", "revoke")],
            tasks=[(Job.process_provider_webhook, ("w1",))],
            events=True,
        )
    )
    names = [name for name, _, _ in broker.sent]
    assert names == [
        REGISTRY[Step.validate].name,
        REGISTRY[Step.revoke].name,
        Job.process_provider_webhook,
        RELAY_TASK,
    ]
    assert broker.sent[2][1] == ["w1"]
    assert broker.sent[-1][2] is None  # at once, no countdown

    for _ in range(5):  # more commits within the window: one trailing kick for them all
        enqueuer(AfterCommit(events=True, changed=["v1", "v2"]))
    assert [n for n, _, _ in broker.sent].count(RELAY_TASK) == 1
    assert events.published[:2] == [(CHANGED, "v1"), (CHANGED, "v2")]
    time.sleep(0.3)
    assert [n for n, _, _ in broker.sent].count(RELAY_TASK) == 2  # the trailing kick
    time.sleep(0.25)
    enqueuer(AfterCommit(events=True))  # the window has passed: at once again
    assert [n for n, _, _ in broker.sent].count(RELAY_TASK) == 3


def test_a_failing_dispatcher_is_logged_and_the_session_goes_on(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(work: AfterCommit) -> None:
        raise RuntimeError("broker on fire")

    with handle(tenant, broken) as db:
        vehicle_id = add_vehicle(db)
        with db.session() as session:
            vehicle = lock(session, vehicle_id)
            assert vehicle is not None
            record_event(session, "connected_vehicle.updated", vehicle)
            session.commit()  # the data is committed: no error here
            assert lock(session, vehicle_id) is not None  # and the session still works
            session.commit()
    assert "could not hand over" in caplog.text


def test_a_released_savepoint_hands_over_nothing_until_the_commit(handed) -> None:
    db, got = handed
    vehicle_id = add_vehicle(db)
    with db.session() as session:
        vehicle = lock(session, vehicle_id)
        assert vehicle is not None
        with session.begin_nested():
            steps.schedule(vehicle, Step.validate)
        assert got == []
        session.commit()
    assert got == [AfterCommit(steps=[(vehicle_id, "validate")], events=False, changed=[])]
