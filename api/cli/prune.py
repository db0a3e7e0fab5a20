"""``cv prune``: retention now, the pass beat runs every hour (cv.prune)."""

from __future__ import annotations

from datetime import timedelta

import click

from api.cli.common import open_db as _db
from settings import get_settings

__all__ = ["prune"]


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items())


@click.command("prune")
@click.option(
    "--days",
    type=click.IntRange(min=0),
    help="Delete what is older than this many days [default: CV_RETENTION_DAYS, 30]. "
    "0 deletes nothing.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    help="Rows per transaction [default: CV_RETENTION_BATCH, 1000].",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def prune(days: int | None, batch: int | None, dry_run: bool) -> None:
    """Delete what the service is done with, once older than the retention.

    \b
    Deleted:
      outbox events published that long ago (not one that a client webhook
        delivery still pending stands for, nor the newest event);
      client webhook deliveries finished that long ago (succeeded, exhausted,
        disabled), with their attempts;
      provider webhooks processed that long ago;
      step attempts (the vehicles' history) that ended that long ago.
    Never: unpublished events, pending deliveries, unprocessed provider webhooks.

    Beat runs the same pass every hour (the task cv.prune). Each batch is its own
    short transaction, so it runs beside the service, and an interrupted run is
    simply run again. A line per batch shows the progress.
    """
    from store.models import utcnow
    from workflows.retention import PruneReport
    from workflows.retention import prune as prune_rows

    s = get_settings()
    days = s.retention_days if days is None else days
    batch = s.retention_batch if batch is None else batch
    if days == 0:
        click.echo("retention is 0 days (off): nothing deleted")
        return
    now = utcnow()
    before = (now - timedelta(days=days)).isoformat(timespec="seconds")
    if dry_run:
        report = prune_rows(_db(), days=days, now=now, dry_run=True)
        click.echo(f"would delete, older than {days} days (before {before}):")
        click.echo(f"  {_summary(report.counts())}")
        return

    def progress(table: str, report: PruneReport) -> None:
        line = f"  {table}: {getattr(report, table)} deleted"
        if table == "webhook_deliveries":
            line += f" (with {report.webhook_attempts} attempts)"
        click.echo(line)

    click.echo(f"deleting what is older than {days} days (before {before}), {batch} rows a batch")
    report = prune_rows(_db(), days=days, batch=batch, now=now, progress=progress)
    from workflows.audit import Action, Who, record_now

    counts = {**report.counts(), "days": days}
    record_now(_db(), Who.os_user(), Action.prune, counts=counts)
    click.echo(f"deleted {_summary(report.counts())} in {report.batches} batches")
