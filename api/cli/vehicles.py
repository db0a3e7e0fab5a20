"""``cv vehicles``: list, show and re-drive connected vehicles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import select

from api.cli.common import fail as _fail
from api.cli.common import iso
from api.cli.common import open_db as _db
from providers.names import Provider
from settings import get_settings
from store.models import ConnectedVehicle
from workflows.errors import DomainError
from workflows.fleet import FleetFilter, select_vehicles
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["vehicles"]


@click.group()
def vehicles() -> None:
    """Connected vehicles."""


def _plain() -> Any:
    """Load only the columns that are not encrypted: the tool shows no secret, and a row
    whose secrets do not decrypt is listed all the same."""
    from sqlalchemy.orm import load_only

    from store.crypto import Encrypted

    columns = ConnectedVehicle.__table__.columns
    plain = [getattr(ConnectedVehicle, c.key) for c in columns if not isinstance(c.type, Encrypted)]
    return load_only(*plain, raiseload=True)


def _short(text: str | None, width: int = 80) -> str | None:
    if text is None:
        return None
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _as_json(v: ConnectedVehicle) -> dict[str, Any]:
    """A vehicle for scripts: what operators act on, never a token or a code."""

    return {
        "id": v.id,
        "client_id": v.client_id,
        "user_id": v.user_id,
        "provider": v.provider,
        "vehicle_id": v.vehicle_id,
        "status": v.status,
        "step": v.step,
        "failure_code": v.failure_code,
        "failure_retryable": bool(v.failure_retryable) if v.failure_code else None,
        "attempts": v.attempts or 0,
        "last_error": _short(v.last_error, 200),
        "vin": v.vin,
        "provider_vehicle_id": v.provider_vehicle_id,
        "created_at": iso(v.created_at),
        "updated_at": iso(v.updated_at),
        "unreadable_at": iso(v.unreadable_at),
        "unreadable_reason": v.unreadable_reason,
    }


@vehicles.command("list")
@click.option("--status", help=f"Only this status ({', '.join(s.value for s in Status)}).")
@click.option("--code", help="Only this failure code (e.g. PROVIDER_UNAVAILABLE).")
@click.option("--provider", help=f"Only this provider ({', '.join(p.value for p in Provider)}).")
@click.option("--client", "client_id", help="Only this client's vehicles.")
@click.option("--step", help=f"Only vehicles with this step due ({', '.join(Step)}).")
@click.option("--since", help="Changed at or after: an age (30m, 2h, 7d) or an ISO time.")
@click.option("--until", help="Changed before: an age or an ISO time.")
@click.option("--search", help="A vehicle id, VIN, provider vehicle id or the client's user id.")
@click.option("--unreadable", is_flag=True, help="Only rows the service could not read (and why).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
def vehicles_list(
    status: str | None,
    code: str | None,
    provider: str | None,
    client_id: str | None,
    step: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    unreadable: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List connected vehicles, most recently changed first, by why they stand where they
    stand: e.g. --status failed --code PROVIDER_UNAVAILABLE --provider Smartcar --since 2h."""
    try:
        f = FleetFilter.parse(
            status=status,
            code=code,
            provider=provider,
            client_id=client_id,
            step=step,
            since=since,
            until=until,
            search=search,
            unreadable=unreadable,
        )
    except DomainError as exc:
        _fail(exc.message)
        return
    with _db().session() as session:
        rows = list(session.execute(select_vehicles(f, limit=limit).options(_plain())).scalars())
    if as_json:
        click.echo(json.dumps([_as_json(v) for v in rows], indent=2))
        return
    if not rows:
        click.echo("no connected vehicles")
        return
    click.echo(
        f"{'id':36}  {'status':15}  {'provider':12}  {'client':12}  {'failure':24}  "
        f"{'step':10}  {'tries':5}  {'changed':16}  vin"
    )
    for v in rows:
        failure = v.failure_code or "-"
        if v.failure_retryable:
            failure += " (r)"
        click.echo(
            f"{v.id:36}  {v.status:15}  {v.provider:12}  {v.client_id:12}  {failure:24}  "
            f"{v.step or '-':10}  {v.attempts or 0:<5}  {v.updated_at:%Y-%m-%d %H:%M}  "
            f"{v.vin or '-'}"
        )
        if v.last_error:
            click.echo(f"  last error: {_short(v.last_error)}")
        if v.unreadable_at is not None:
            click.echo(
                f"  unreadable since {v.unreadable_at:%Y-%m-%d %H:%M}: {v.unreadable_reason}"
            )


@vehicles.command("unmark")
@click.argument("vehicle_id")
def vehicles_unmark(vehicle_id: str) -> None:
    """Clear a row's unreadable mark once it is mended (its key restored, say): the
    periodic passes take it again."""
    from sqlalchemy import update

    with _db().session() as session:
        done = session.execute(
            update(ConnectedVehicle)
            .where(ConnectedVehicle.id == vehicle_id)
            .values(unreadable_at=None, unreadable_reason=None)
        )
        session.commit()
    if not done.rowcount:  # type: ignore[attr-defined]
        _fail(f"no connected vehicle {vehicle_id!r}")
        return
    click.echo(f"{vehicle_id}: no longer marked unreadable")


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    ago = (datetime.now(UTC) - value).total_seconds()
    relative = f"{abs(ago):.0f}s {'ago' if ago >= 0 else 'from now'}"
    return f"{value.isoformat(timespec='seconds')} ({relative})"


@vehicles.command("show")
@click.argument("vehicle_id")
def vehicles_show(vehicle_id: str) -> None:
    """One vehicle as operators need it: its status and failure, the step due and its
    attempts, the last error, when its token expires and is refreshed, when its data was
    last fetched. Never a token or a code: those columns are not even read."""
    from store.models import VehicleSnapshot

    stmt = select(ConnectedVehicle).options(_plain()).where(ConnectedVehicle.id == vehicle_id)
    with _db().session() as session:
        v = session.execute(stmt).scalar_one_or_none()
        if v is None:
            _fail(f"no connected vehicle {vehicle_id!r}")
            return
        snap = session.get(VehicleSnapshot, vehicle_id)
        failure = "-"
        if v.failure_code:
            failure = f"{v.failure_code}{' (retryable)' if v.failure_retryable else ''}"
        rows = [
            ("id", v.id),
            ("status", v.status),
            ("failure", failure),
            ("provider", v.provider),
            ("client / user", f"{v.client_id} / {v.user_id}"),
            ("vehicle", f"{v.vehicle_id}, vin {v.vin or '-'}"),
            ("scope", ", ".join(v.scope or []) or "-"),
            ("step due", f"{v.step} at {_when(v.step_due_at)}" if v.step else "-"),
            ("attempts", str(v.attempts or 0)),
            ("last error", v.last_error or "-"),
            ("token expires", _when(v.token_expires_at)),
            ("refresh due", _when(v.refresh_due_at)),
            ("data fetched", _when(snap.fetched_at if snap else None)),
            ("fetch asked", _when(snap.fetch_requested_at if snap else None)),
            (
                "fetch failed",
                f"{_when(snap.fetch_failed_at)}: {snap.fetch_error}"
                if snap and snap.fetch_failed_at
                else "-",
            ),
            ("created", _when(v.created_at)),
            ("updated", _when(v.updated_at)),
            ("authorized", _when(v.authorized_at)),
            (
                "unreadable",
                f"{_when(v.unreadable_at)}: {v.unreadable_reason}" if v.unreadable_at else "-",
            ),
        ]
    for name, value in rows:
        click.echo(f"{name + ':':15} {value}")


@vehicles.command("redrive")
@click.argument("vehicle_id")
@click.option("--force", is_flag=True, help="Also when the failure is not retryable.")
def vehicles_redrive(vehicle_id: str, force: bool) -> None:
    """Take a failed vehicle back to work: validate again when it holds tokens, make a
    new link (Enode), or give it a new authorization URL for its user."""
    from workflows import unreadable
    from workflows.authorization import redrive
    from workflows.errors import DomainError

    try:  # a vehicle that cannot be read is marked (cv vehicles list --unreadable)
        vehicle = unreadable.run(
            _db(), lambda session: redrive(session, get_settings(), vehicle_id, force=force)
        )
    except DomainError as exc:
        _fail(f"{exc.code.value}: {exc.message}")
        return
    click.echo(f"{vehicle.id} is {vehicle.status} again")
    if vehicle.step:
        click.echo(f"enqueued: {vehicle.step}")
    elif vehicle.authorization_url:
        click.echo(f"the user must consent again: {vehicle.authorization_url}")
