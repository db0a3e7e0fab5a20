"""``cv catalogue``: the catalogue of vehicle models."""

from __future__ import annotations

from pathlib import Path

import click

from api.cli.common import fail as _fail
from api.cli.common import open_db as _db
from store.catalogue import load_catalogue

__all__ = ["catalogue"]


@click.group()
def catalogue() -> None:
    """The catalogue of vehicle models."""


@catalogue.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def catalogue_load(path: Path) -> None:
    """Add or update models from a JSON file (a list of {id, make, model, providers,
    year_from, year_to}), in the shape of the shipped catalogue."""
    try:
        with _db().session() as session:
            n = load_catalogue(session, path)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"loaded {n} models from {path}")
