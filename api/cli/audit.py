"""``cv audit``: the operators' actions (workflows.audit)."""

from __future__ import annotations

import json

import click

from api.cli.common import fail, iso, open_db
from workflows.audit import actions
from workflows.errors import DomainError
from workflows.fleet import parse_when

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """What operators did: re-drives, bulk runs, unmarks, rotations, prunes."""


@audit.command("list")
@click.option("--vehicle", "vehicle_id", help="Only actions on this vehicle.")
@click.option("--run", "run_id", help="Only actions on this bulk re-drive.")
@click.option("--since", help="At or after: an age (30m, 2h, 7d) or an ISO time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
def audit_list(
    vehicle_id: str | None, run_id: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """The newest actions first: who, when, what, why, and what came of it."""
    try:
        after = parse_when(since)
    except DomainError as exc:
        fail(exc.message)
        return
    query = actions(vehicle_id=vehicle_id, run_id=run_id, since=after, limit=limit)
    with open_db().session() as session:
        rows = list(session.scalars(query))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "at": iso(a.at),
                        "actor": a.actor,
                        "via": a.via,
                        "action": a.action,
                        "vehicle_id": a.vehicle_id,
                        "run_id": a.run_id,
                        "reason": a.reason,
                        "filter": a.filter,
                        "counts": a.counts,
                        "outcome": a.outcome,
                    }
                    for a in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("no operator actions")
        return
    for a in rows:
        target = a.vehicle_id or a.run_id or ""
        extra = []
        if a.reason:
            extra.append(f"reason {a.reason!r}")
        if a.filter:
            extra.append(" ".join(f"{k}={v}" for k, v in a.filter.items()))
        if a.counts:
            extra.append(", ".join(f"{k} {v}" for k, v in a.counts.items()))
        if a.outcome:
            extra.append(a.outcome)
        click.echo(
            f"{a.at:%Y-%m-%d %H:%M:%S}  {a.actor} ({a.via})  {a.action} {target}"
            + (f"  [{'; '.join(extra)}]" if extra else "")
        )
