"""What the commands of ``cv`` share: the database handle, and failing with a message."""

from __future__ import annotations

import sys

import click

from settings import get_settings
from store.db import Database, open_database

__all__ = ["fail", "open_db"]


def open_db() -> Database:
    s = get_settings()
    # The API's dispatcher: a step a command makes due is enqueued when it commits.
    from api import jobs

    return open_database(
        s.database_url, s.secret_key.get_secret_value(), dispatcher=jobs.dispatcher()
    )


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
