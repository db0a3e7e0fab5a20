"""Every trigger from every status, on PostgreSQL and SQLite: legal ones move the vehicle
and write exactly one event in the same transaction; illegal ones raise and change
nothing. The expected table is SPEC §2, written here independently of the machine's."""

from __future__ import annotations

import pytest
from sqlalchemy.orm.exc import StaleDataError

from store.db import Database
from store.models import ConnectedVehicle
from tests.helpers.store import add_vehicle, events_of, vehicle_row
from workflows.errors import ErrorCode
from workflows.machine import IllegalTransition, Lifecycle, Status
from workflows.vehicles import lock

LEGAL = {
    ("pending", "authorize"): "authorized",
    ("pending", "fail"): "failed",
    ("failed", "retry"): "pending",
    ("authorized", "request_removal"): "pending_removal",
    ("pending_removal", "complete_removal"): "removed",
    ("authorized", "deauthorize"): "deauthorized",
    ("pending", "remove"): "removed",
    ("failed", "remove"): "removed",
    ("deauthorized", "remove"): "removed",
    # SPEC §3, reauthorizeConnectedVehicle: the user consents again, same id
    ("deauthorized", "reauthorize"): "pending",
    ("failed", "reauthorize"): "pending",
}
TRIGGERS = sorted({trigger for _, trigger in LEGAL})
ARGS: dict[str, dict[str, object]] = {
    "fail": {"error": ErrorCode.AUTH_CODE_INVALID},
    "authorize": {"vin": "VIN123", "provider_vehicle_id": "pv-1"},
}


def given_vehicle(db: Database, status: str, *, retryable: bool = True) -> str:
    failed = status == "failed"
    return add_vehicle(
        db,
        status=status,
        failure_code="PROVIDER_UNAVAILABLE" if failed else None,
        failure_retryable=retryable if failed else None,
    )


def fire(db: Database, vehicle_id: str, trigger: str, **kwargs: object) -> None:
    with db.session() as session:
        row = lock(session, vehicle_id)
        assert row is not None
        Lifecycle(session, row).trigger_event(trigger, **{**ARGS.get(trigger, {}), **kwargs})
        session.commit()


@pytest.mark.parametrize("status", [s.value for s in Status])
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_trigger_from_every_status(any_db: Database, status: str, trigger: str) -> None:
    vehicle_id = given_vehicle(any_db, status)

    if (status, trigger) in LEGAL:
        fire(any_db, vehicle_id, trigger)
        dest = LEGAL[(status, trigger)]
        assert vehicle_row(any_db, vehicle_id).status == dest
        assert events_of(any_db, vehicle_id) == [f"connected_vehicle.{dest}"]
    else:
        with pytest.raises(IllegalTransition) as raised:
            fire(any_db, vehicle_id, trigger)
        assert raised.value.code is ErrorCode.ILLEGAL_TRANSITION
        assert vehicle_row(any_db, vehicle_id).status == status
        assert events_of(any_db, vehicle_id) == []


def test_the_machine_knows_every_status_of_the_spec() -> None:
    spec = {"pending", "authorized", "failed", "pending_removal", "removed", "deauthorized"}
    assert {s.value for s in Status} == spec


def test_failing_records_the_code_message_and_retryability(any_db: Database) -> None:
    vehicle_id = given_vehicle(any_db, "pending")
    fire(any_db, vehicle_id, "fail", error=ErrorCode.PROVIDER_UNAVAILABLE, retryable=True)
    row = vehicle_row(any_db, vehicle_id)
    assert (row.failure_code, row.failure_retryable) == ("PROVIDER_UNAVAILABLE", True)
    assert row.failure_message == "The provider Smartcar is unavailable. Try again later."


def test_retry_needs_a_retryable_failure_or_an_operator(any_db: Database) -> None:
    vehicle_id = given_vehicle(any_db, "failed", retryable=False)
    with pytest.raises(IllegalTransition):
        fire(any_db, vehicle_id, "retry")
    assert vehicle_row(any_db, vehicle_id).status == "failed"

    fire(any_db, vehicle_id, "retry", operator=True)
    row = vehicle_row(any_db, vehicle_id)
    assert row.status == "pending"
    assert row.failure_code is None


def test_authorizing_sets_vin_and_time(any_db: Database) -> None:
    vehicle_id = given_vehicle(any_db, "pending")
    fire(any_db, vehicle_id, "authorize")
    row = vehicle_row(any_db, vehicle_id)
    assert (row.vin, row.provider_vehicle_id) == ("VIN123", "pv-1")
    assert row.authorized_at is not None and row.authorized_at.tzinfo is not None


def test_a_change_and_its_event_roll_back_together(any_db: Database) -> None:
    vehicle_id = given_vehicle(any_db, "pending")
    with any_db.session() as session:
        row = lock(session, vehicle_id)
        assert row is not None
        Lifecycle(session, row).trigger_event("authorize", vin="X")
        session.rollback()
    assert vehicle_row(any_db, vehicle_id).status == "pending"
    assert events_of(any_db, vehicle_id) == []


def test_a_stale_copy_cannot_overwrite_a_newer_change(any_db: Database) -> None:
    vehicle_id = given_vehicle(any_db, "pending")
    with any_db.session() as stale_session:
        stale = stale_session.get(ConnectedVehicle, vehicle_id)
        assert stale is not None
        stale_session.commit()  # ends the read; the copy stays in memory
        fire(any_db, vehicle_id, "authorize")
        stale.label = "late write"
        with pytest.raises(StaleDataError):
            stale_session.commit()
    assert vehicle_row(any_db, vehicle_id).status == "authorized"


def test_losing_access_forgets_the_tokens(any_db: Database) -> None:
    """Deauthorized: the access is gone, so its tokens (secret, and of no use) are too."""
    vehicle_id = add_vehicle(
        any_db, status="authorized", access_token="at", refresh_token="rt", vin="VIN123"
    )
    fire(any_db, vehicle_id, "deauthorize", error=ErrorCode.ACCESS_REVOKED)
    row = vehicle_row(any_db, vehicle_id)
    assert (row.status, row.failure_code) == ("deauthorized", "ACCESS_REVOKED")
    assert (row.access_token, row.refresh_token, row.refresh_due_at) == (None, None, None)


def test_reauthorizing_starts_a_new_consent_for_the_same_car(any_db: Database) -> None:
    """Back to pending with the failure cleared; the VIN stays: the same car must return."""
    vehicle_id = add_vehicle(
        any_db,
        status="failed",
        failure_code="SCOPE_NOT_GRANTED",
        failure_retryable=False,
        access_token="at",
        auth_code="spent",
        vin="VIN123",
    )
    fire(any_db, vehicle_id, "reauthorize")
    row = vehicle_row(any_db, vehicle_id)
    assert (row.status, row.failure_code, row.vin) == ("pending", None, "VIN123")
    assert (row.access_token, row.auth_code, row.code_claimed_at) == (None, None, None)


@pytest.mark.parametrize("retryable", [True, False])
def test_a_failure_keeps_tokens_only_when_it_may_be_retried(
    any_db: Database, retryable: bool
) -> None:
    """A retryable failure keeps tokens a spent code bought (a re-drive validates with
    them); a final one (another car, a scope refused) keeps no access it did not want."""
    vehicle_id = add_vehicle(any_db, status="pending", access_token="at", refresh_token="rt")
    fire(any_db, vehicle_id, "fail", error=ErrorCode.SCOPE_NOT_GRANTED, retryable=retryable)
    row = vehicle_row(any_db, vehicle_id)
    assert (row.access_token is not None) is retryable
    assert (row.refresh_token is not None) is retryable


def test_one_machine_serves_many_threads_at_once() -> None:
    """Every Lifecycle shares one HierarchicalMachine, which swaps its own scope while it
    runs a trigger: threads that fire at once (the API's callbacks) must not see each
    other's scope. 8 threads, each moving its own vehicle through pending's stages."""
    import threading

    from store.models import ConnectedVehicle, utcnow
    from workflows.machine import Lifecycle, Stage

    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(300):
                v = ConnectedVehicle(id="v", status="pending", provider="Smartcar")
                v.authorization_url = "https://consent.example/"
                life = Lifecycle(None, v)
                life.trigger_event("receive_code", code="c")
                life.trigger_event("claim", owner=None)
                life.trigger_event("release")
                assert life.stage == Stage.code_received, life.state
                v.code_received_at = utcnow()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
