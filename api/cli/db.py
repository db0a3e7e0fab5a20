"""``cv db``: the database schema."""

from __future__ import annotations

import click

from api.cli.common import open_db as _db
from settings import get_settings
from store.catalogue import load_catalogue
from store.migrate import upgrade

__all__ = ["db"]


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the latest schema and load the shipped catalogue."""
    url = get_settings().database_url
    upgrade(url)
    with _db().session() as session:
        n = load_catalogue(session)
    click.echo(f"database at the latest schema; catalogue holds {n} shipped models")
