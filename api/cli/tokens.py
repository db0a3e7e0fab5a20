"""``cv token``: users' tokens, minted for trying the API."""

from __future__ import annotations

from datetime import timedelta

import click

from api.cli.common import fail as _fail
from api.cli.common import open_db as _db
from settings import get_settings
from store.models import Client
from workflows.user_tokens import mint_user_token

__all__ = ["token"]


@click.group()
def token() -> None:
    """Users' tokens."""


@token.command("mint")
@click.argument("client_id")
@click.argument("user_id")
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(1, None),
    help="Lifetime in seconds (at most CV_USER_TOKEN_MAX_SECONDS, 24 h by default).",
)
@click.option("--admin", is_flag=True, help="A client administrator's token (webhooks).")
def token_mint(client_id: str, user_id: str, ttl: int, admin: bool) -> None:
    """Mint a user token signed with the client's secret (for trying the API)."""
    if ttl > get_settings().user_token_max_seconds:
        _fail("the API refuses a token that lives longer than CV_USER_TOKEN_MAX_SECONDS")
        return
    with _db().session() as session:
        c = session.get(Client, client_id)
        if c is None:
            _fail(f"no client {client_id!r}")
            return
        click.echo(mint_user_token(c, user_id, timedelta(seconds=ttl), admin=admin))
