"""``cv vehicles``: list, show and re-drive connected vehicles."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlalchemy import select

from api.cli_common import fail as _fail
from api.cli_common import open_db as _db
from settings import get_settings
from store.models import ConnectedVehicle
from workflows.machine import Status

__all__ = ["vehicles"]


@click.group()
def vehicles() -> None:
    """Connected vehicles."""


@vehicles.command("list")
@click.option("--client", "client_id", help="Only this client's vehicles.")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--limit", default=50, show_default=True)
def vehicles_list(client_id: str | None, status: str | None, limit: int) -> None:
    """List connected vehicles, newest first."""
    stmt = select(ConnectedVehicle).order_by(ConnectedVehicle.created_at.desc()).limit(limit)
    if client_id:
        stmt = stmt.where(ConnectedVehicle.client_id == client_id)
    if status:
        stmt = stmt.where(ConnectedVehicle.status == status)
    with _db().session() as session:
        rows = list(session.execute(stmt).scalars())
    if not rows:
        click.echo("no connected vehicles")
        return
    click.echo(
        f"{'id':36}  {'status':15}  {'provider':12}  {'client':12}  {'failure':24}  "
        f"{'step':10}  {'tries':5}  vin"
    )
    for v in rows:
        failure = v.failure_code or "-"
        if v.failure_retryable:
            failure += " (r)"
        click.echo(
            f"{v.id:36}  {v.status:15}  {v.provider:12}  {v.client_id:12}  {failure:24}  "
            f"{v.step or '-':10}  {v.attempts or 0:<5}  {v.vin or '-'}"
        )


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
    from sqlalchemy.orm import load_only

    from store.crypto import Encrypted
    from store.models import VehicleSnapshot

    plain = [c.key for c in ConnectedVehicle.__table__.columns if not isinstance(c.type, Encrypted)]
    stmt = (
        select(ConnectedVehicle)
        .options(load_only(*[getattr(ConnectedVehicle, k) for k in plain], raiseload=True))
        .where(ConnectedVehicle.id == vehicle_id)
    )
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
        ]
    for name, value in rows:
        click.echo(f"{name + ':':15} {value}")


@vehicles.command("redrive")
@click.argument("vehicle_id")
@click.option("--force", is_flag=True, help="Also when the failure is not retryable.")
def vehicles_redrive(vehicle_id: str, force: bool) -> None:
    """Take a failed vehicle back to work: validate again when it holds tokens, make a
    new link (Enode), or give it a new authorization URL for its user."""
    from workflows.authorization import redrive
    from workflows.errors import DomainError

    with _db().session() as session:
        try:
            vehicle = redrive(session, get_settings(), vehicle_id, force=force)
        except DomainError as exc:
            _fail(f"{exc.code.value}: {exc.message}")
            return
    click.echo(f"{vehicle.id} is {vehicle.status} again")
    if vehicle.step:
        click.echo(f"enqueued: {vehicle.step}")
    elif vehicle.authorization_url:
        click.echo(f"the user must consent again: {vehicle.authorization_url}")
