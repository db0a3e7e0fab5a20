"""Operations at fleet scale (issue 19): what recording each step attempt costs the e2e
figure (the same run with CV_STEP_ATTEMPTS on and off, interleaved), and new users'
authorizations/s while a bulk re-drive of 10,000 failed vehicles is under way, beside
the same measure without it. The failed vehicles hold tokens the fake Smartcar honours,
so each re-drive is a real validation on the steps queue, beside the new users'."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import func, select

from bench.record import Figure, Results, median, ratio_at_least
from bench.stack import Stack
from bench.throughput import e2e_rate
from providers.fakes.common import Grant
from store.models import ConnectedVehicle, RedriveRun, utcnow
from workflows import bulk
from workflows.audit import Who
from workflows.fleet import FleetFilter
from workflows.registry import Job

__all__ = ["attempts_cost", "redrive_beside"]

BENCH = Who("bench", "cli")


def _restart_workers(s: Stack, **env: str) -> None:
    s.stop_workers()
    s.env.update(env)
    s.start_worker()


def attempts_cost(results: Results, s: Stack, *, n: int, repeat: int) -> None:
    """e2e authorizations/s with each step attempt recorded vs not (workers restarted
    with CV_STEP_ATTEMPTS each time, runs interleaved)."""
    s.smartcar.fake.latency = 0.0
    on: list[float] = []
    off: list[float] = []
    notes: list[str] = []
    try:
        for _ in range(repeat):
            for record, runs in (("false", off), ("true", on)):
                _restart_workers(s, CV_STEP_ATTEMPTS=record)
                rate, note = e2e_rate(s, n, timeout=max(120.0, n / 2))
                if not note.startswith(f"{n}/{n} authorized") or "failed" in note:
                    raise RuntimeError(f"a run with CV_STEP_ATTEMPTS={record} failed: {note}")
                runs.append(rate)
                notes.append(f"{record}: {rate:.1f}/s")
    finally:
        _restart_workers(s, CV_STEP_ATTEMPTS="true")
    results.add(
        Figure(
            f"e2e authorizations/s with step attempts recorded, N={n}",
            median(on),
            "/s",
            baseline=median(off),
            goal=ratio_at_least(0.95),
            note="baseline: CV_STEP_ATTEMPTS=false; interleaved: " + ", ".join(notes),
            runs=on,
        )
    )


def _failed_fleet(s: Stack, count: int, user: str) -> None:
    """`count` vehicles failed PROVIDER_UNAVAILABLE, each holding a token the fake
    honours (minted on a grant of the demo account): a re-drive validates it again."""
    fake = s.smartcar.fake
    app_id = next(iter(fake.apps))
    grant = Grant(
        app_id,
        s.settings.callback_url,
        fake.accounts["demo"],
        [
            "read_vehicle_info",
            "read_vin",
            "read_location",
            "read_battery",
            "read_charge",
            "read_odometer",
        ],
        time.time(),
    )
    expires = time.time() + 86_400
    far = utcnow() + timedelta(days=1)
    before = utcnow() - timedelta(hours=1)
    batch: list[ConnectedVehicle] = []
    for i in range(count):
        token = f"bench-redrive-{user}-{i}"
        fake.tokens[token] = (grant, expires)
        batch.append(
            ConnectedVehicle(
                client_id=s.tenant.client_id,
                user_id=user,
                vehicle_id="tesla-model-3",
                provider="Smartcar",
                scope=["location", "charge_state", "odometer"],
                status="failed",
                failure_code="PROVIDER_UNAVAILABLE",
                failure_retryable=True,
                access_token=token,
                refresh_token=f"r-{token}",
                token_expires_at=far,
                created_at=before,
                updated_at=before,
                pending_since=before,
            )
        )
        if len(batch) == 1000 or i == count - 1:
            with s.db.session() as session:
                session.add_all(batch)
                session.commit()
            batch = []


def redrive_beside(results: Results, s: Stack, *, n: int, failed: int, repeat: int) -> None:
    """New users' authorizations/s while a bulk re-drive of `failed` vehicles runs at
    CV_REDRIVE_PER_SECOND, vs the same measure with no re-drive (interleaved)."""
    s.smartcar.fake.latency = 0.0
    if not s.service.workers:
        s.start_worker()
    alone: list[float] = []
    beside: list[float] = []
    notes: list[str] = []
    for round_ in range(repeat):
        rate, note = e2e_rate(s, n, timeout=max(120.0, n / 2))
        alone.append(rate)
        user = f"outage-{round_}"
        _failed_fleet(s, failed, user)
        f = FleetFilter.parse(code="PROVIDER_UNAVAILABLE", search=user)
        run = bulk.start(s.db, f, who=BENCH, reason="bench: an outage's failures")
        # (the bench's database handle has no dispatcher: its job is sent here, as the
        # operators' command's handle sends it when the run commits)
        s.celery.send_task(Job.bulk_redrive, args=[run.id])
        try:
            time.sleep(2)  # the run under way before the new users come
            rate_beside, note_beside = e2e_rate(s, n, timeout=max(120.0, n / 2))
            with s.db.session() as session:
                state = session.get(RedriveRun, run.id)
                assert state is not None
                redriven, still = state.redriven, state.state
                authorized = session.execute(
                    select(func.count()).where(
                        ConnectedVehicle.user_id == user, ConnectedVehicle.status == "authorized"
                    )
                ).scalar_one()
        finally:
            bulk.stop(s.db, run.id, who=BENCH)
        if still != "running":
            raise RuntimeError(f"the re-drive was {still} before the measure ended")
        for label, text in (("alone", note), ("beside", note_beside)):
            if not text.startswith(f"{n}/{n} authorized") or "failed" in text:
                raise RuntimeError(f"new users' run {label} the re-drive failed: {text}")
        beside.append(rate_beside)
        notes.append(
            f"{rate:.1f} alone, {rate_beside:.1f} beside ({redriven} re-driven, "
            f"{authorized} of them authorized, meanwhile)"
        )
    results.add(
        Figure(
            f"e2e authorizations/s beside a bulk re-drive of {failed:,}, N={n}",
            median(beside),
            "/s",
            baseline=median(alone),
            goal=ratio_at_least(0.8),
            note=f"baseline: the same without it; pace {s.settings.redrive_per_second:g}/s; "
            + "; ".join(notes),
            runs=beside,
        )
    )
