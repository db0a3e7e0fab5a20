"""``cv redrives``: bulk re-drives (workflows.bulk): list them, follow one, stop and
resume it."""

from __future__ import annotations

import json
import time

import click

from api.cli.common import fail, open_db
from store.db import Database
from store.models import RedriveRun
from workflows import bulk
from workflows.audit import Who
from workflows.errors import DomainError

__all__ = ["follow", "print_plan", "redrives"]


@click.group()
def redrives() -> None:
    """Bulk re-drives: started by `cv vehicles redrive --code … --reason …`."""


def print_plan(counted: dict[tuple[str | None, str], int]) -> None:
    """A dry run's counts, by failure code and provider."""
    total = sum(counted.values())
    click.echo(f"would re-drive {total} failed vehicles (dry run: nothing changed)")
    for (code, provider), n in sorted(counted.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n:8}  {code or '-':32} {provider}")


def _line(run: RedriveRun, left: int) -> str:
    done = run.total - left
    return (
        f"{run.state:8} {done}/{run.total}: {run.redriven} re-driven, {run.skipped} skipped, "
        f"{run.refused} refused"
    )


def follow(db: Database, run_id: str, *, every: float = 1.0) -> None:
    """A progress bar until the run is done or stopped; Ctrl-C leaves it running."""
    seen = 0
    try:
        v = bulk.view(db, run_id, limit=0)
        with click.progressbar(length=v.run.total, label="re-driving", show_pos=True) as bar:
            while True:
                v = bulk.view(db, run_id, limit=0)
                done = v.run.total - v.left
                bar.update(done - seen)
                seen = done
                if v.run.state != "running":
                    break
                time.sleep(every)
    except KeyboardInterrupt:
        click.echo(f"\nstill running: cv redrives stop {run_id}")
        return
    click.echo(_line(v.run, v.left))
    _print_results(db, run_id)


def _print_results(db: Database, run_id: str, limit: int = 20) -> None:
    for result in (bulk.Result.skipped, bulk.Result.refused):
        items = bulk.view(db, run_id, limit=limit, result=result).items
        for item in items:
            click.echo(f"  {result:8} {item.vehicle_id}: {item.detail}")


@redrives.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
def redrives_list(limit: int, as_json: bool) -> None:
    """The newest bulk re-drives first."""
    runs = bulk.runs(open_db(), limit=limit)
    if as_json:
        click.echo(json.dumps([bulk.run_json(r) for r in runs], indent=2))
        return
    if not runs:
        click.echo("no bulk re-drives")
        return
    for r in runs:
        filters = " ".join(f"{k}={v}" for k, v in r.filter.items())
        click.echo(
            f"{r.id}  {r.created_at:%Y-%m-%d %H:%M}  {r.actor}  {r.state:8} "
            f"{r.redriven}/{r.total} re-driven, {r.skipped} skipped, {r.refused} refused"
            f"  [{filters}]{' forced' if r.force else ''}  {r.reason!r}"
        )


@redrives.command("show")
@click.argument("run_id")
@click.option("--follow", "keep_following", is_flag=True, help="A progress bar until it ends.")
@click.option("--json", "as_json", is_flag=True, help="The run and its per-vehicle results.")
def redrives_show(run_id: str, keep_following: bool, as_json: bool) -> None:
    """One run: its counts, and each vehicle's result (skipped and refused, and why)."""
    db = open_db()
    try:
        v = bulk.view(db, run_id, limit=10_000 if as_json else 0)
    except DomainError as exc:
        fail(exc.message)
        return
    if as_json:
        click.echo(json.dumps(v.as_json(), indent=2))
        return
    if keep_following and v.run.state == "running":
        follow(db, run_id)
        return
    click.echo(f"{v.run.id}: {v.run.reason!r} by {v.run.actor} ({v.run.via})")
    click.echo(_line(v.run, v.left))
    _print_results(db, run_id)


def _set(run_id: str, action: str) -> None:
    db = open_db()
    try:
        run = (bulk.stop if action == "stop" else bulk.resume)(db, run_id, who=Who.os_user())
    except DomainError as exc:
        fail(exc.message)
        return
    click.echo(f"{run.id}: {run.state}")


@redrives.command("stop")
@click.argument("run_id")
def redrives_stop(run_id: str) -> None:
    """Stop a run before its next vehicle (cv redrives resume goes on). Audited."""
    _set(run_id, "stop")


@redrives.command("resume")
@click.argument("run_id")
def redrives_resume(run_id: str) -> None:
    """Go on with a stopped run where it stopped. Audited."""
    _set(run_id, "resume")
