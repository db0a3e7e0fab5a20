"""What the commands of ``cv`` share: the database handle, and failing with a message."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from settings import get_settings
from store.db import Database, open_database

__all__ = ["fail", "iso", "open_db"]


def open_db() -> Database:
    s = get_settings()
    # The API's dispatcher: a step a command makes due is enqueued when it commits.
    from api import jobs

    db = open_database(
        s.database_url, s.secret_key.get_secret_value(), dispatcher=jobs.dispatcher()
    )
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # the command's connections closed as it ends, not left to exit
        ctx.call_on_close(db.engine.dispose)
    return db


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def iso(moment: datetime | None) -> str | None:
    """A stored time (naive, in UTC) as `--json` prints it: ISO 8601 with its offset."""
    return moment.replace(tzinfo=UTC).isoformat() if moment is not None else None
