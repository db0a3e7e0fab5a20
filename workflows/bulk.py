"""Bulk re-drive (SPEC §8): the failed vehicles a filter selects, taken back to work at
a set pace, with each one's result.

    count = plan(db, f)                                   # the dry run: how many
    run = start(db, f, who=…, reason="…", force=False)    # the run (its job enqueued)
    work(db, settings, run.id, …)                         # the job: a slice at a time
    stop(db, run.id, who=…); resume(db, run.id, who=…)

A run fixes its vehicles when it begins (its items: the failed vehicles the filter
selected then), so that it ends, and what it did is known per vehicle. Its job
(``cv.bulk_redrive`` on the housekeeping queue) re-drives them in order at
``CV_REDRIVE_PER_SECOND``, each in one transaction with its item's result, and hands
over to a new job after a slice of time; the sweep gives a running run whose job was
lost a new one. It is idempotent: an item with a result is never taken again, a vehicle
no longer failed (or re-driven since the run began, or removed) is skipped and counted,
a failure that is not retryable is refused unless the run was forced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from settings import Settings
from store.db import DATABASE_AWAY, Database
from store.models import ConnectedVehicle, RedriveItem, RedriveRun, new_id, utcnow
from workflows import authorization
from workflows.audit import Action, Who, record
from workflows.authorization import NotRedrivable
from workflows.dispatch import note_task
from workflows.errors import DomainError, ErrorCode
from workflows.fleet import FleetFilter, count_by_code_and_provider
from workflows.machine import Status
from workflows.unreadable import UNREADABLE
from workflows.vehicles import lock

__all__ = [
    "JOB",
    "Result",
    "RunView",
    "plan",
    "resume",
    "run_json",
    "runs",
    "stalled",
    "start",
    "stop",
    "view",
    "work",
]

log = logging.getLogger(__name__)

JOB = "cv.bulk_redrive"  # the registry's Job.bulk_redrive (not imported: it imports us)
REASON_MAX = 500
# A running run no job has held for this long lost it: the sweep sends another.
STALLED = timedelta(minutes=2)
SLICE_SECONDS = 20.0  # a job's share of a run; the next slice is a new job
LEASE_MARGIN = timedelta(seconds=30)  # a slice's lease outlives it: the hand-over


class Result:
    redriven = "redriven"
    skipped = "skipped"
    refused = "refused"


def _bad(message: str) -> DomainError:
    return DomainError(ErrorCode.BAD_USER_INPUT, message=message)


def _failed_only(f: FleetFilter) -> FleetFilter:
    """A re-drive takes failed vehicles: the filter's status is `failed`, or refused;
    and it says which (every failed vehicle at once is no operator's intent by default:
    `--since 30d` says it)."""
    if f.status is not None and f.status is not Status.failed:
        raise _bad(f"a re-drive takes failed vehicles only, not {f.status.value}")
    if not any(v for k, v in f.words().items() if k != "status"):
        raise _bad(
            "a bulk re-drive needs a filter: a failure code, provider, client, step, "
            "time (since, until) or search"
        )
    return FleetFilter(**{**f.__dict__, "status": Status.failed})


def plan(db: Database, f: FleetFilter) -> dict[tuple[str | None, str], int]:
    """The dry run: how many failed vehicles the filter selects, by failure code and
    provider. Nothing changes."""
    query = count_by_code_and_provider(_failed_only(f))
    with db.session() as session:
        return {(code, provider): int(n) for code, provider, n in session.execute(query)}


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise _bad('a re-drive in bulk needs a reason (--reason "…"): it goes in the audit')
    if len(text) > REASON_MAX:
        raise _bad(f"a reason is at most {REASON_MAX} characters")
    return text


def start(
    db: Database,
    f: FleetFilter,
    *,
    who: Who,
    reason: str | None,
    force: bool = False,
) -> RedriveRun:
    """Begin a run over the failed vehicles `f` selects now; its job is enqueued when
    this commits. BAD_USER_INPUT without a reason, or when nothing is selected."""
    f = _failed_only(f)
    why = _reason(reason)
    with db.session() as session:
        run = RedriveRun(
            actor=who.actor[:200],
            via=who.via,
            reason=why,
            filter=f.words(),
            force=force,
            state="running",
        )
        session.add(run)
        session.flush()
        chosen = select(literal(run.id), ConnectedVehicle.id).where(*f.conditions())
        session.execute(insert(RedriveItem).from_select(["run_id", "vehicle_id"], chosen))
        counted = select(func.count()).where(RedriveItem.run_id == run.id)
        run.total = int(session.execute(counted).scalar_one())
        if run.total == 0:
            session.rollback()
            raise _bad("no failed vehicle matches this filter: nothing to re-drive")
        record(
            session,
            who,
            Action.bulk_redrive,
            run_id=run.id,
            reason=why,
            filter=run.filter,
            counts={"total": run.total},
            outcome="forced" if force else None,
        )
        note_task(session, JOB, run.id)
        session.commit()
        session.refresh(run)
        session.expunge(run)
    return run


def _set_state(
    db: Database, run_id: str, who: Who, to: str, action: Action, verb: str
) -> RedriveRun:
    with db.session() as session:
        run = session.get(RedriveRun, run_id, with_for_update=True)
        if run is None:
            raise _bad(f"no bulk re-drive {run_id!r}")
        if run.state == "done":
            raise _bad(f"bulk re-drive {run_id} is done: nothing to {verb}")
        if run.state != to:
            run.state = to
            run.updated_at = utcnow()
            record(session, who, action, run_id=run_id, counts=_counts(run))
            if to == "running":
                note_task(session, JOB, run.id)
        session.commit()
        session.refresh(run)
        session.expunge(run)
    return run


def stop(db: Database, run_id: str, *, who: Who) -> RedriveRun:
    """The run stops before its next vehicle (a re-drive under way ends first)."""
    return _set_state(db, run_id, who, "stopped", Action.bulk_stop, "stop")


def resume(db: Database, run_id: str, *, who: Who) -> RedriveRun:
    """A stopped run goes on where it stopped: its job enqueued again."""
    return _set_state(db, run_id, who, "running", Action.bulk_resume, "resume")


def _counts(run: RedriveRun) -> dict[str, int]:
    return {
        "total": run.total,
        "redriven": run.redriven,
        "skipped": run.skipped,
        "refused": run.refused,
    }


def _one(session: Session, settings: Settings, run: RedriveRun, vehicle_id: str) -> tuple[str, str]:
    """One item, in the caller's transaction: its result and why."""
    vehicle = lock(session, vehicle_id)
    if vehicle is None:
        return Result.skipped, "removed since the run began"
    since = vehicle.pending_since
    if vehicle.status == Status.failed and since is not None and since > run.created_at:
        return Result.skipped, "re-driven since the run began"  # and failed again
    try:
        vehicle = authorization.redrive(
            session, settings, vehicle_id, force=run.force, commit=False
        )
    except NotRedrivable as exc:
        return (Result.skipped if exc.skip else Result.refused), exc.message
    return Result.redriven, f"now {vehicle.status}" + (
        f", step {vehicle.step}" if vehicle.step else ""
    )


def _settle(session: Session, run_id: str, vehicle_id: str, result: str, detail: str) -> None:
    session.execute(
        update(RedriveItem)
        .where(RedriveItem.run_id == run_id, RedriveItem.vehicle_id == vehicle_id)
        .values(result=result, detail=detail[:500], done_at=utcnow())
    )
    column = getattr(RedriveRun, result)
    session.execute(
        update(RedriveRun)
        .where(RedriveRun.id == run_id)
        .values({column: column + 1, RedriveRun.updated_at: utcnow()})
    )


class _Undo(Exception):
    def __init__(self, result: str, detail: str) -> None:
        self.result, self.detail = result, detail


def _take(db: Database, settings: Settings, run: RedriveRun, vehicle_id: str) -> str | None:
    """One item in one transaction: claimed (a second job on the same run finds it taken
    and passes), the vehicle re-driven in a savepoint (undone unless it was), and the
    item's result with it: an item is never done twice, nor counted twice."""
    with db.session() as session:
        claimed = session.execute(
            update(RedriveItem)
            .where(
                RedriveItem.run_id == run.id,
                RedriveItem.vehicle_id == vehicle_id,
                RedriveItem.result.is_(None),
            )
            .values(result="taking")
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return None
        try:
            with session.begin_nested():
                result, detail = _one(session, settings, run, vehicle_id)
                if result != Result.redriven:
                    raise _Undo(result, detail)
        except _Undo as undo:
            result, detail = undo.result, undo.detail
        except UNREADABLE as exc:  # a row this service cannot read: it fails alone
            result, detail = Result.refused, f"unreadable: {type(exc).__name__}"
        except DomainError as exc:
            result, detail = Result.refused, f"{exc.code.value}: {exc.message}"
        except DATABASE_AWAY:
            raise  # the job fails; the sweep sends another once the database is back
        except Exception as exc:  # one vehicle must never stall the run
            log.exception("bulk re-drive %s: vehicle %s", run.id, vehicle_id)
            result, detail = Result.refused, f"error: {type(exc).__name__} (see the log)"
        _settle(session, run.id, vehicle_id, result, detail)
        session.commit()
    return result


def work(
    db: Database,
    settings: Settings,
    run_id: str,
    *,
    token: str = "",
    seconds: float = SLICE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """The job: re-drive the run's next vehicles at the set pace for up to `seconds`.
    Returns the run's state after: ``running`` (more left: the caller sends the job
    again, with the same `token`), ``stopped`` or ``done``; ``leased`` when another job
    holds the run (this one ends, and sends nothing)."""
    token = token or new_id()
    if not _lease(db, run_id, token, seconds):
        with db.session() as session:
            run = session.get(RedriveRun, run_id)
            return "done" if run is None else run.state if run.state != "running" else "leased"
    pace = 1.0 / settings.redrive_per_second
    began = clock()
    n = 0
    while True:
        with db.session() as session:
            run = session.get(RedriveRun, run_id)
            if run is None:
                return "done"
            if run.state != "running":
                _release(session, run, token)
                return run.state
            vehicle_id = session.execute(
                select(RedriveItem.vehicle_id)
                .where(RedriveItem.run_id == run_id, RedriveItem.result.is_(None))
                .order_by(RedriveItem.vehicle_id)
                .limit(1)
            ).scalar_one_or_none()
            if vehicle_id is None:
                run.state, run.finished_at, run.updated_at = "done", utcnow(), utcnow()
                _release(session, run, token)
                log.info("bulk re-drive %s done: %s", run_id, _counts(run))
                return "done"
            session.expunge(run)
        # The pace: the slice's vehicle n is re-driven n/rate seconds after it began
        # (skipped and refused ones cost the steps queue nothing, and no turn); the
        # next slice begins when this one's next vehicle is due.
        due = began + n * pace
        if due > clock():
            sleep(due - clock())
        if due - began >= seconds:
            return "running"
        if _take(db, settings, run, vehicle_id) == Result.redriven:
            n += 1


def _lease(db: Database, run_id: str, token: str, seconds: float) -> bool:
    """Take the run for this job (`token`), unless another job holds it; held for the
    slice and a margin, renewed by the next slice of the same job."""
    now = utcnow()
    with db.session() as session:
        taken = session.execute(
            update(RedriveRun)
            .where(
                RedriveRun.id == run_id,
                RedriveRun.state == "running",
                or_(
                    RedriveRun.lease_token.is_(None),
                    RedriveRun.lease_token == token,
                    RedriveRun.lease_until < now,
                ),
            )
            .values(
                lease_token=token,
                lease_until=now + timedelta(seconds=seconds) + LEASE_MARGIN,
                updated_at=now,
            )
        )
        session.commit()
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def _release(session: Session, run: RedriveRun, token: str) -> None:
    """The job ends (the run stopped or done): the run is free for the next one."""
    if run.lease_token == token:
        run.lease_token, run.lease_until = None, None
    session.commit()


def stalled(session: Session, now: datetime | None = None) -> list[str]:
    """Running runs no job holds (its message lost, its worker gone): the sweep sends
    each a new job."""
    now = now or utcnow()
    query = select(RedriveRun.id).where(
        RedriveRun.state == "running",
        RedriveRun.updated_at < now - STALLED,
        or_(RedriveRun.lease_until.is_(None), RedriveRun.lease_until < now),
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class RunView:
    run: RedriveRun
    items: list[RedriveItem]
    left: int

    def as_json(self) -> dict[str, Any]:
        return {
            **run_json(self.run),
            "left": self.left,
            "items": [
                {"vehicle_id": i.vehicle_id, "result": i.result, "detail": i.detail}
                for i in self.items
            ],
        }


def run_json(r: RedriveRun) -> dict[str, Any]:
    """A run for scripts (the ops endpoint, `cv redrives … --json`)."""
    return {
        "id": r.id,
        "state": r.state,
        "actor": r.actor,
        "via": r.via,
        "reason": r.reason,
        "filter": r.filter,
        "force": r.force,
        "created_at": r.created_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        **_counts(r),
    }


def runs(db: Database, *, limit: int) -> list[RedriveRun]:
    """The newest runs first."""
    with db.session() as session:
        query = select(RedriveRun).order_by(RedriveRun.created_at.desc()).limit(limit)
        found = list(session.scalars(query))
        session.expunge_all()
    return found


def view(db: Database, run_id: str, *, limit: int = 500, result: str | None = None) -> RunView:
    """A run, its counts and (up to `limit` of) its items, the settled ones first."""
    with db.session() as session:
        run = session.get(RedriveRun, run_id)
        if run is None:
            raise _bad(f"no bulk re-drive {run_id!r}")
        query = select(RedriveItem).where(RedriveItem.run_id == run_id)
        if result is not None:
            query = query.where(RedriveItem.result == result)
        items = list(
            session.scalars(
                query.order_by(RedriveItem.done_at.is_(None), RedriveItem.done_at.desc()).limit(
                    limit
                )
            )
        )
        left = session.execute(
            select(func.count())
            .select_from(RedriveItem)
            .where(RedriveItem.run_id == run_id, RedriveItem.result.is_(None))
        ).scalar_one()
        session.expunge_all()
    return RunView(run, items, int(left))
