"""Bulk re-drive (workflows.bulk): a dry run counts, a run needs a reason, goes at its
pace, can be stopped and resumed, skips what is no longer failed, refuses what is not
retryable unless forced, and each vehicle's result and the operator's actions are kept."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from harness.tenant import Tenant
from settings import Settings
from store.models import OperatorAction, RedriveItem
from tests.helpers.store import add_vehicle, vehicle_row
from workflows import bulk
from workflows.audit import Who
from workflows.errors import DomainError, ErrorCode
from workflows.fleet import FleetFilter
from workflows.machine import Lifecycle
from workflows.vehicles import lock

WHO = Who("ana", "cli")
UNAVAILABLE = FleetFilter.parse(code="PROVIDER_UNAVAILABLE")


def failed(tenant: Tenant, code: ErrorCode = ErrorCode.PROVIDER_UNAVAILABLE, **fields) -> str:
    retryable = code is ErrorCode.PROVIDER_UNAVAILABLE
    vehicle_id = add_vehicle(tenant.db, client_id=tenant.client_id, access_token="t", **fields)
    fire(tenant, vehicle_id, "fail", error=code, retryable=retryable)
    return vehicle_id


def fire(tenant: Tenant, vehicle_id: str, trigger: str, **kwargs) -> None:
    with tenant.db.session() as session:
        row = lock(session, vehicle_id)
        assert row is not None
        Lifecycle(session, row).trigger_event(trigger, **kwargs)
        session.commit()


class Clock:
    """A clock the pacing reads and its sleep moves: no real waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def results(tenant: Tenant, run_id: str) -> dict[str, tuple[str | None, str | None]]:
    with tenant.db.session() as session:
        items = session.scalars(select(RedriveItem).where(RedriveItem.run_id == run_id))
        return {i.vehicle_id: (i.result, i.detail) for i in items}


def test_a_dry_run_counts_by_code_and_provider_and_changes_nothing(tenant: Tenant) -> None:
    ids = [failed(tenant) for _ in range(3)]
    failed(tenant, provider="Enode")
    failed(tenant, ErrorCode.AUTHORIZATION_DENIED)

    assert bulk.plan(tenant.db, UNAVAILABLE) == {
        ("PROVIDER_UNAVAILABLE", "Smartcar"): 3,
        ("PROVIDER_UNAVAILABLE", "Enode"): 1,
    }
    assert bulk.plan(tenant.db, FleetFilter.parse(provider="Smartcar")) == {
        ("PROVIDER_UNAVAILABLE", "Smartcar"): 3,
        ("AUTHORIZATION_DENIED", "Smartcar"): 1,
    }
    assert {vehicle_row(tenant.db, v).status for v in ids} == {"failed"}


def test_a_run_needs_a_reason_failed_vehicles_and_something_to_do(tenant: Tenant) -> None:
    failed(tenant)
    for reason in (None, "", "   "):
        with pytest.raises(DomainError, match="needs a reason"):
            bulk.start(tenant.db, UNAVAILABLE, who=WHO, reason=reason)
    with pytest.raises(DomainError, match="failed vehicles only, not authorized"):
        bulk.start(tenant.db, FleetFilter.parse(status="authorized"), who=WHO, reason="x")
    with pytest.raises(DomainError, match="nothing to re-drive"):
        bulk.start(tenant.db, FleetFilter.parse(code="CONNECT_NO_VEHICLE"), who=WHO, reason="x")
    with tenant.db.session() as session:
        assert session.scalars(select(OperatorAction)).all() == []


def test_a_run_redrives_at_its_pace_skips_and_refuses_and_records_each(
    tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "redrive_per_second", 4.0)
    retryable = [failed(tenant) for _ in range(4)]
    gone = failed(tenant)
    back = failed(tenant)
    denied = failed(tenant, ErrorCode.AUTHORIZATION_DENIED)
    everyone = FleetFilter.parse(provider="Smartcar")
    run = bulk.start(tenant.db, everyone, who=WHO, reason="Smartcar outage 09:00-09:40")
    assert run.total == 7
    # Meanwhile one is removed and another re-driven (and authorized) by someone else
    fire(tenant, gone, "remove")
    fire(tenant, back, "retry")
    clock = Clock()

    state = bulk.work(tenant.db, settings, run.id, seconds=60, sleep=clock.sleep, clock=clock)

    assert state == "done"
    got = results(tenant, run.id)
    assert {v: got[v][0] for v in retryable} == dict.fromkeys(retryable, "redriven")
    assert got[gone][0] == got[back][0] == "skipped"
    assert str(got[gone][1]).startswith("no longer failed: removed since")
    assert got[denied] == ("refused", "not retryable (AUTHORIZATION_DENIED): re-drive with force")
    assert {vehicle_row(tenant.db, v).status for v in retryable} == {"pending"}
    assert vehicle_row(tenant.db, denied).status == "failed"
    view = bulk.view(tenant.db, run.id)
    assert (view.run.redriven, view.run.skipped, view.run.refused, view.left) == (4, 2, 1, 0)
    # 4 a second: each vehicle re-driven a quarter of a second after the one before (the
    # skipped and refused ones take no turn); the wait comes before the next vehicle, so
    # there is none after the last one when it was re-driven (the order is the ids')
    assert set(clock.slept) == {0.25} and len(clock.slept) in (3, 4)
    assert clock.now == 0.25 * len(clock.slept)
    with tenant.db.session() as session:
        audit = session.scalars(select(OperatorAction)).one()
    assert (audit.actor, audit.via, audit.action, audit.run_id) == (
        "ana",
        "cli",
        "bulk_redrive",
        run.id,
    )
    assert audit.reason == "Smartcar outage 09:00-09:40"
    assert audit.filter == {"status": "failed", "provider": "Smartcar"}
    assert audit.counts == {"total": 7}


def test_a_slice_ends_on_time_and_the_next_goes_on_without_doing_any_twice(
    tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "redrive_per_second", 2.0)
    ids = [failed(tenant) for _ in range(5)]
    run = bulk.start(tenant.db, UNAVAILABLE, who=WHO, reason="outage")
    clock = Clock()

    first = bulk.work(
        tenant.db, settings, run.id, token="job-1", seconds=1.0, sleep=clock.sleep, clock=clock
    )
    assert first == "running"
    assert bulk.view(tenant.db, run.id).left == 3  # two in one second, at 2 a second
    assert clock.now == 1.0  # the slice ends when its next vehicle is due: the pace holds
    # another job (the sweep's, a resume's) finds the run held, and ends
    assert bulk.work(tenant.db, settings, run.id, token="job-2") == "leased"
    assert bulk.view(tenant.db, run.id).left == 3

    again = bulk.work(
        tenant.db, settings, run.id, token="job-1", seconds=60, sleep=clock.sleep, clock=clock
    )
    assert again == "done"
    assert bulk.work(tenant.db, settings, run.id, seconds=60) == "done"  # again: nothing
    assert set(results(tenant, run.id).values()) == {("redriven", "now pending, step validate")}
    view = bulk.view(tenant.db, run.id)
    assert (view.run.redriven, view.run.skipped) == (5, 0)
    assert {vehicle_row(tenant.db, v).status for v in ids} == {"pending"}


def test_a_stopped_run_does_nothing_until_resumed(tenant: Tenant, settings: Settings) -> None:
    ids = [failed(tenant) for _ in range(3)]
    run = bulk.start(tenant.db, UNAVAILABLE, who=WHO, reason="outage")

    assert bulk.stop(tenant.db, run.id, who=Who("bo", "flower")).state == "stopped"
    assert bulk.work(tenant.db, settings, run.id, seconds=60, sleep=lambda s: None) == "stopped"
    assert {vehicle_row(tenant.db, v).status for v in ids} == {"failed"}

    assert bulk.resume(tenant.db, run.id, who=WHO).state == "running"
    assert bulk.work(tenant.db, settings, run.id, seconds=60, sleep=lambda s: None) == "done"
    assert {vehicle_row(tenant.db, v).status for v in ids} == {"pending"}
    with pytest.raises(DomainError, match="is done: nothing to stop"):
        bulk.stop(tenant.db, run.id, who=WHO)
    with pytest.raises(DomainError, match="no bulk re-drive"):
        bulk.resume(tenant.db, "no-such-run", who=WHO)
    with tenant.db.session() as session:
        actions = [
            (a.actor, a.action)
            for a in session.scalars(select(OperatorAction).order_by(OperatorAction.id))
        ]
    assert actions == [("ana", "bulk_redrive"), ("bo", "bulk_stop"), ("ana", "bulk_resume")]


def test_force_takes_failures_that_are_not_retryable(tenant: Tenant, settings: Settings) -> None:
    denied = failed(tenant, ErrorCode.AUTHORIZATION_DENIED)
    run = bulk.start(
        tenant.db, FleetFilter.parse(code="AUTHORIZATION_DENIED"), who=WHO, reason="x", force=True
    )
    assert bulk.work(tenant.db, settings, run.id, sleep=lambda s: None) == "done"
    assert results(tenant, run.id)[denied][0] == "redriven"
    assert vehicle_row(tenant.db, denied).status == "pending"


def test_a_vehicle_that_breaks_is_refused_alone_and_the_run_goes_on(
    tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflows import authorization

    ids = sorted(failed(tenant) for _ in range(3))
    real = authorization.redrive

    def breaks_on_the_first(session, settings, vehicle_id, **kw):
        if vehicle_id == ids[0]:
            raise KeyError("a bug")
        return real(session, settings, vehicle_id, **kw)

    monkeypatch.setattr(authorization, "redrive", breaks_on_the_first)
    run = bulk.start(tenant.db, UNAVAILABLE, who=WHO, reason="outage")
    assert bulk.work(tenant.db, settings, run.id, sleep=lambda s: None) == "done"
    got = results(tenant, run.id)
    assert got[ids[0]] == ("refused", "error: KeyError (see the log)")
    assert {got[v][0] for v in ids[1:]} == {"redriven"}
    assert vehicle_row(tenant.db, ids[0]).status == "failed"  # nothing of it changed


def test_every_failed_vehicle_at_once_needs_a_filter_that_says_so(tenant: Tenant) -> None:
    failed(tenant)
    for f in (FleetFilter(), FleetFilter.parse(status="failed")):
        with pytest.raises(DomainError, match="needs a filter"):
            bulk.plan(tenant.db, f)
        with pytest.raises(DomainError, match="needs a filter"):
            bulk.start(tenant.db, f, who=WHO, reason="x")
    assert bulk.plan(tenant.db, FleetFilter.parse(since="30d")) == {
        ("PROVIDER_UNAVAILABLE", "Smartcar"): 1
    }


def test_the_sweep_gives_a_run_whose_job_was_lost_a_new_one(
    tenant: Tenant, settings: Settings
) -> None:
    from datetime import timedelta

    from store.models import utcnow
    from workflows.sweep import sweep

    failed(tenant)
    run = bulk.start(tenant.db, UNAVAILABLE, who=WHO, reason="outage")
    assert sweep(tenant.db, settings).bulk_runs == 0  # its job is young
    later = utcnow() + bulk.STALLED + timedelta(seconds=1)
    assert sweep(tenant.db, settings, now=later).bulk_runs == 1
    assert sweep(tenant.db, settings, now=later).bulk_runs == 0  # sent; not again at once
    bulk.stop(tenant.db, run.id, who=WHO)
    assert sweep(tenant.db, settings, now=later + bulk.STALLED * 2).bulk_runs == 0
