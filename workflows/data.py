"""The car's data: one snapshot per vehicle, stored by workers (a fetch job, or a
provider's webhook that carries data), read by the API, which never calls a provider.

- ``ask``: the API's read. A snapshot younger than ``CV_DATA_MAX_AGE_SECONDS`` is the
  answer. An older one (or none) makes a fetch due, once however many ask: the request
  is marked on the snapshot's row under its lock, and a second asker finds it marked.
  A mark older than the stall deadline (its job lost) is made again.
- ``fetch``: the job. Tokens valid first (``workflows.tokens``), one read of the parts
  the vehicle's scope covers, a new snapshot and its ``connected_vehicle.data_updated``
  event in one transaction. A car that cannot answer now (a sleeping Tesla: never
  woken) or a provider that is down leaves the last snapshot standing, with why.
- Lost access on a read (a 401 with a token just refreshed, the car gone from an Enode
  account) deauthorizes the vehicle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from providers import PermanentError, Reason, RetryableError
from providers.data import VehicleData, parts_for
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, VehicleSnapshot, utcnow
from workflows.dispatch import note_change, note_job
from workflows.errors import DomainError, ErrorCode
from workflows.events import record_event
from workflows.machine import Status
from workflows.session import AccessLost, VehicleSession
from workflows.steps import Step
from workflows.user_tokens import Principal
from workflows.vehicles import view_owned

__all__ = ["Asked", "DataView", "ask", "fetch", "fetch_exhausted", "look", "store"]

# (`attempts=0` in `fetch`: a fetch is one attempt of its own, whatever step the vehicle is at.)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataView:
    """What the API may show: the snapshot cut to the vehicle's scope, and the state of
    its fetch. Read with no secret loaded."""

    vehicle_id: str
    provider: str
    status: str
    data: VehicleData | None  # None: never fetched
    fetched_at: datetime | None
    fetch_requested_at: datetime | None
    fetch_failed_at: datetime | None


@dataclass(frozen=True)
class Asked:
    view: DataView
    # A fetch is on its way (asked for now, or joined): the answer may wait for it. False
    # when the snapshot is young enough, or a fetch failed a moment ago (a car asleep,
    # the provider down): the last snapshot is answered at once.
    wait: bool


def _snapshot(session: Session, vehicle_id: str, *, for_update: bool) -> VehicleSnapshot:
    """The vehicle's snapshot row, made (empty) the first time; concurrent first askers
    make one row between them."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(VehicleSnapshot).values(vehicle_id=vehicle_id).on_conflict_do_nothing())
    stmt = select(VehicleSnapshot).where(VehicleSnapshot.vehicle_id == vehicle_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one()


def _view(
    vehicle_id: str, provider: str, status: str, scope: list[str], snap: VehicleSnapshot | None
) -> DataView:
    data = None
    if snap is not None and snap.data is not None:
        data = VehicleData.from_json(snap.data).only(parts_for(scope))
    return DataView(
        vehicle_id=vehicle_id,
        provider=provider,
        status=status,
        data=data,
        fetched_at=snap.fetched_at if snap else None,
        fetch_requested_at=snap.fetch_requested_at if snap else None,
        fetch_failed_at=snap.fetch_failed_at if snap else None,
    )


def ask(session: Session, settings: Settings, who: Principal, vehicle_id: str) -> Asked:
    """connectedVehicleData: the caller's authorized vehicle's snapshot, and a fetch
    made due (after commit) when it is stale and none is on its way."""
    vehicle = view_owned(session, who, vehicle_id)
    if vehicle.status != Status.authorized:
        session.commit()
        raise DomainError(ErrorCode.CONNECTED_VEHICLE_FORBIDDEN)
    now = utcnow()
    snap = _snapshot(session, vehicle_id, for_update=True)
    max_age = timedelta(seconds=settings.data_max_age_seconds)
    fresh = snap.fetched_at is not None and now - snap.fetched_at < max_age
    cooling = snap.fetch_failed_at is not None and now - snap.fetch_failed_at < timedelta(
        seconds=settings.data_retry_seconds
    )
    wait = False
    if not fresh and not cooling:
        lease = timedelta(seconds=settings.stall_seconds)
        if snap.fetch_requested_at is None or now - snap.fetch_requested_at > lease:
            snap.fetch_requested_at = now
            note_job(vehicle, Step.fetch)  # enqueued when this commits
        wait = True
    scope = list(vehicle.scope or [])
    view = _view(vehicle.id, vehicle.provider, vehicle.status, scope, snap)
    session.commit()
    return Asked(view, wait)


def look(session: Session, vehicle_id: str) -> DataView:
    """The snapshot as it stands (a waiting query's re-read; the caller was checked).
    Plain columns only: nothing secret is read in the API."""
    CV = ConnectedVehicle
    row = session.execute(select(CV.provider, CV.status, CV.scope).where(CV.id == vehicle_id)).one()
    snap = session.get(VehicleSnapshot, vehicle_id)
    view = _view(vehicle_id, row.provider, row.status, list(row.scope or []), snap)
    session.commit()
    return view


def store(session: Session, vehicle: ConnectedVehicle, data: VehicleData, *, merge: bool) -> None:
    """A new snapshot and its event, in the caller's transaction. `merge`: a webhook
    that tells of some parts leaves the others as they were; the snapshot counts as
    fetched now (fresh) only when every part the scope covers came."""
    for problem in data.problems:
        log.warning("vehicle %s: data not read: %s", vehicle.id, problem)
    snap = _snapshot(session, vehicle.id, for_update=True)
    if merge and snap.data:
        data = data.merged_over(VehicleData.from_json(snap.data))
    wanted = parts_for(vehicle.scope or [])
    complete = all(getattr(data, part) is not None for part in wanted)
    snap.data = data.only(wanted).to_json()
    if complete or not merge:
        snap.fetched_at = utcnow()
        snap.fetch_requested_at = None
        snap.fetch_failed_at = None
        snap.fetch_error = None
    record_event(session, "connected_vehicle.data_updated", vehicle, data=snap.data)


def _failed(db: Database, vehicle_id: str, why: str) -> None:
    """The fetch is over without data: the last snapshot stands; waiters are woken."""
    with db.session() as session:
        vehicle = session.get(ConnectedVehicle, vehicle_id)
        snap = session.get(VehicleSnapshot, vehicle_id, with_for_update=True)
        if vehicle is not None and snap is not None:
            snap.fetch_requested_at = None
            snap.fetch_failed_at = utcnow()
            snap.fetch_error = why[:500]
            note_change(vehicle)
        session.commit()


def fetch(
    db: Database,
    settings: Settings,
    vehicle_id: str,
    *,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """The fetch job: read what the vehicle's scope covers, store it as its snapshot."""
    vs = VehicleSession(db, settings, vehicle_id, transport=transport, attempts=0)
    with vs.locked() as v:
        if v is None:
            return
        if not v.is_(Status.authorized):
            status = v.row.status
        else:
            status, adapter = None, v.adapter
            provider_vehicle_id = v.row.provider_vehicle_id or ""
            parts = parts_for(v.row.scope or [])
    if status is not None:
        _failed(db, vehicle_id, f"the vehicle is {status}")
        return
    try:
        data = vs.call(lambda account: adapter.read_data(account, provider_vehicle_id, parts))
    except AccessLost:
        _failed(db, vehicle_id, "access lost at the provider")
        return
    except PermanentError as exc:
        if exc.reason is Reason.ACCESS_REVOKED:
            vs.fire("deauthorize", error=ErrorCode.ACCESS_REVOKED)
        _failed(db, vehicle_id, str(exc))
        return
    except RetryableError as exc:  # asleep, or down: the last snapshot stands
        _failed(db, vehicle_id, str(exc))
        return
    with vs.locked(Status.authorized) as v:
        if v is not None:
            store(v.session, v.row, data, merge=False)


def fetch_exhausted(db: Database, vehicle_id: str) -> None:
    """A fetch is tried once (its asker waits a bounded time): nothing is left to do
    when a retry policy gives up on it."""
    _failed(db, vehicle_id, "the provider kept failing")
