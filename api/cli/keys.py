"""``cv keys``: the secret key against what is stored; a rotation re-encrypts it all."""

from __future__ import annotations

import click

from api.cli.common import fail as _fail
from api.cli.common import open_db as _db

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """The secret key (CV_SECRET_KEY) against what is stored."""


@keys.command("check")
def keys_check() -> None:
    """Whether the key decrypts what is stored (what readiness checks)."""
    from store.crypto import SecretKeyError
    from store.keys import check_key

    try:
        check_key(_db().engine)
    except SecretKeyError as exc:
        _fail(str(exc))
        return
    click.echo("the secret key decrypts what is stored")


@keys.command("rotate")
@click.option("--batch", default=500, show_default=True, help="Rows per transaction.")
def keys_rotate(batch: int) -> None:
    """Re-encrypt every stored secret under the first key of CV_SECRET_KEY.

    Rotating: put the new key first and keep the old one after it
    (CV_SECRET_KEY=new,old), restart the processes, run this, then drop the old key.
    Batched and resumable: an interrupted run is run again."""
    from store.crypto import SecretKeyError
    from store.keys import rotate_all

    def progress(table: str, done: int) -> None:
        click.echo(f"  {table}: {done} rows")

    try:
        total = rotate_all(_db().engine, batch=batch, progress=progress)
    except SecretKeyError as exc:
        _fail(f"{exc}: is the old key still listed after the new one?")
        return
    from workflows.audit import Action, Who, record_now

    record_now(_db(), Who.os_user(), Action.keys_rotate, counts={"rows": total})
    click.echo(f"re-encrypted {total} rows under the first key")
