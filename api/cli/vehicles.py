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
from workflows.fleet import FleetFilter, plain_columns, select_vehicles
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["vehicles"]


@click.group()
def vehicles() -> None:
    """Connected vehicles."""


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


def _filter(
    status: str | None,
    code: str | None,
    provider: str | None,
    client_id: str | None,
    step: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    unreadable: bool,
) -> FleetFilter | None:
    """The filter the options say, or None once its refusal is printed (exit 2)."""
    try:
        return FleetFilter.parse(
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
        return None


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
    f = _filter(status, code, provider, client_id, step, since, until, search, unreadable)
    if f is None:
        return
    with _db().session() as session:
        rows = list(
            session.execute(select_vehicles(f, limit=limit).options(plain_columns())).scalars()
        )
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
@click.option("--reason", help="Why (kept in the audit).")
def vehicles_unmark(vehicle_id: str, reason: str | None) -> None:
    """Clear a row's unreadable mark once it is mended (its key restored, say): the
    periodic passes take it again. Audited."""
    from workflows.audit import Who
    from workflows.operators import unmark

    if not unmark(_db(), Who.os_user(), vehicle_id, reason=reason):
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
@click.option("--json", "as_json", is_flag=True, help="The vehicle and its history as JSON.")
def vehicles_show(vehicle_id: str, as_json: bool) -> None:
    """One vehicle as operators need it: its status and failure, the step due and its
    attempts, the last error, when its token expires and is refreshed, when its data was
    last fetched; then its history: state changes (with their request ids), every step
    attempt (the provider's HTTP status and endpoint), its webhook deliveries and the
    operators' actions on it. Never a token or a code: those columns are not even read."""
    from store.models import VehicleSnapshot
    from workflows.history import history

    stmt = (
        select(ConnectedVehicle).options(plain_columns()).where(ConnectedVehicle.id == vehicle_id)
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
            (
                "unreadable",
                f"{_when(v.unreadable_at)}: {v.unreadable_reason}" if v.unreadable_at else "-",
            ),
        ]
        plain = _as_json(v)
    h = history(_db(), vehicle_id)
    if as_json:
        click.echo(json.dumps({**plain, "history": h.as_json()}, indent=2))
        return
    for name, value in rows:
        click.echo(f"{name + ':':15} {value}")
    _print_history(h)


def _print_history(h: Any) -> None:
    from workflows.history import milliseconds

    click.echo("\nstate changes:")
    for c in h.changes or []:
        failure = f" {c.failure}" if c.failure else ""
        click.echo(
            f"  {c.at:%Y-%m-%d %H:%M:%S}  {c.event:36} {c.status or '-':13}{failure}"
            f"  request {c.request_id or '-'}"
        )
    if not h.changes:
        click.echo("  -")
    click.echo("step attempts:")
    for a in h.attempts:
        answer = f"{a.http_status or 'no answer'} {a.endpoint}" if a.endpoint else "no call"
        code = f" {a.error_code}" if a.error_code else ""
        click.echo(
            f"  {a.ended_at:%Y-%m-%d %H:%M:%S}  {a.step:10} #{a.attempt:<2} {a.outcome:10}"
            f"{code}  {answer}  {milliseconds(a)} ms  task {a.task_id or '-'}"
        )
        if a.error and a.outcome != "succeeded":
            click.echo(f"      {_short(a.error, 100)}")
    if not h.attempts:
        click.echo("  -")
    click.echo("webhook deliveries:")
    for d in h.deliveries:
        click.echo(
            f"  {d.event_type:36} {d.status:10} {d.attempts} tries, last {d.last_status or '-'}"
            f"  {d.url}"
        )
    if not h.deliveries:
        click.echo("  -")
    click.echo("operators:")
    for o in h.operators:
        why = f" because {o.reason!r}" if o.reason else ""
        click.echo(
            f"  {o.at:%Y-%m-%d %H:%M:%S}  {o.actor} ({o.via}) {o.action}{why}"
            f"{': ' + o.outcome if o.outcome else ''}"
        )
    if not h.operators:
        click.echo("  -")


@vehicles.command("redrive")
@click.argument("vehicle_id", required=False)
@click.option("--code", help="Bulk: failed with this failure code.")
@click.option(
    "--provider", help=f"Bulk: of this provider ({', '.join(p.value for p in Provider)})."
)
@click.option("--client", "client_id", help="Bulk: this client's vehicles.")
@click.option("--step", help="Bulk: with this step due.")
@click.option("--since", help="Bulk: failed (last changed) at or after: 30m, 2h, 7d or ISO.")
@click.option("--until", help="Bulk: last changed before: an age or an ISO time.")
@click.option("--search", help="Bulk: a vehicle id, VIN, provider vehicle id or user id.")
@click.option(
    "--dry-run", is_flag=True, help="Bulk: count what would be re-driven; change nothing."
)
@click.option("--reason", help="Why (required in bulk; kept in the audit).")
@click.option("--force", is_flag=True, help="Also failures that are not retryable.")
@click.option("--yes", is_flag=True, help="Bulk with --force: no question asked.")
@click.option("--no-wait", is_flag=True, help="Bulk: start the run and return at once.")
def vehicles_redrive(
    vehicle_id: str | None,
    code: str | None,
    provider: str | None,
    client_id: str | None,
    step: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    dry_run: bool,
    reason: str | None,
    force: bool,
    yes: bool,
    no_wait: bool,
) -> None:
    """Take failed vehicles back to work: validate again when one holds tokens, make a
    new link (Enode), or give it a new authorization URL for its user.

    One vehicle: cv vehicles redrive VEHICLE_ID [--force] [--reason "…"].

    In bulk, by the same filters as `cv vehicles list` (failed vehicles only): first
    --dry-run (how many, by code and provider), then the same with --reason "…". The
    run goes at CV_REDRIVE_PER_SECOND on the housekeeping queue, skips what is no longer
    failed, and shows its progress here; Ctrl-C leaves it running (cv redrives stop)."""
    from workflows.audit import Who

    bulk = any(v is not None for v in (code, provider, client_id, step, since, until, search))
    if vehicle_id is not None and (bulk or dry_run):
        _fail("give one VEHICLE_ID, or filters for a bulk re-drive: not both")
        return
    if vehicle_id is None and not bulk:
        _fail(
            "give a VEHICLE_ID, or filters (--code, --provider, --client, --since…) "
            "for a bulk re-drive"
        )
        return
    who = Who.os_user()
    if vehicle_id is not None:
        _redrive_one(vehicle_id, who, force=force, reason=reason)
        return
    f = _filter("failed", code, provider, client_id, step, since, until, search, False)
    if f is None:
        return
    from api.cli.redrives import follow, print_plan
    from workflows import bulk as bulk_runs

    db = _db()
    counted = bulk_runs.plan(db, f)
    if dry_run:
        print_plan(counted)
        return
    if force and not yes:
        total = sum(counted.values())
        click.confirm(
            f"Re-drive {total} failed vehicles, including failures that are not retryable?",
            abort=True,
        )
    try:
        run = bulk_runs.start(db, f, who=who, reason=reason, force=force)
    except DomainError as exc:
        _fail(exc.message)
        return
    click.echo(
        f"bulk re-drive {run.id}: {run.total} vehicles, at {get_settings().redrive_per_second:g}/s"
    )
    if not no_wait:
        follow(db, run.id)


def _redrive_one(vehicle_id: str, who: Any, *, force: bool, reason: str | None) -> None:
    from workflows import operators

    try:  # a vehicle that cannot be read is marked (cv vehicles list --unreadable)
        vehicle = operators.redrive(
            _db(), get_settings(), who, vehicle_id, force=force, reason=reason
        )
    except DomainError as exc:
        _fail(f"{exc.code.value}: {exc.message}")
        return
    click.echo(f"{vehicle.id} is {vehicle.status} again")
    if vehicle.step:
        click.echo(f"enqueued: {vehicle.step}")
    elif vehicle.authorization_url:
        click.echo(f"the user must consent again: {vehicle.authorization_url}")
