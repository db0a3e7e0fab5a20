"""``cv client``: clients, their signing secret, their redirect pages, their provider
apps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import click
from sqlalchemy.orm import Session

from api.cli.common import fail as _fail
from api.cli.common import open_db as _db
from providers.names import Provider
from store.models import Client
from workflows.clients import (
    add_redirect_uri,
    create_client,
    remove_redirect_uri,
    rotate_signing_secret,
)
from workflows.errors import DomainError
from workflows.provider_credentials import set_provider_credentials

__all__ = ["client"]


@click.group()
def client() -> None:
    """Clients: the companies whose users connect cars."""


@client.command("create")
@click.option("--name", required=True, help="The client's display name.")
@click.option("--id", "client_id", help="Choose the id (default: generated).")
def client_create(name: str, client_id: str | None) -> None:
    """Create a client; prints its id and its signing secret (shown once)."""
    with _db().session() as session:
        if client_id and session.get(Client, client_id):
            _fail(f"client {client_id!r} exists already")
        c = create_client(session, name, client_id)
        click.echo(f"client id:       {c.id}")
        click.echo(f"signing secret:  {c.signing_secret}")
        click.echo("Sign users' tokens (HS256, sub = user id, exp) with the signing secret.")


@client.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    default=86400,
    show_default=True,
    type=click.IntRange(0, None),
    help="Seconds the previous secret still verifies tokens (0: refused at once).",
)
def client_rotate_secret(client_id: str, grace: int) -> None:
    """Give a client a new signing secret (printed once); tokens signed with the old one
    are accepted for the grace period, while the client's servers switch over."""
    with _db().session() as session:
        try:
            c = rotate_signing_secret(session, client_id, timedelta(seconds=grace))
        except LookupError as exc:
            _fail(str(exc))
            return
        from workflows.audit import Action, Who, record

        # never the secret: the client and the grace
        record(
            session,
            Who.os_user(),
            Action.client_rotate_secret,
            filter={"client_id": client_id},
            counts={"grace_seconds": grace},
        )
        session.commit()
        click.echo(f"new signing secret: {c.signing_secret}")
        if c.previous_secret_expires_at is not None:
            until = c.previous_secret_expires_at.isoformat(timespec="seconds")
            click.echo(f"the previous one verifies tokens until {until}")
        else:
            click.echo("the previous one is refused from now on")


@client.command("add-redirect-uri")
@click.argument("client_id")
@click.argument("uri")
def client_add_redirect_uri(client_id: str, uri: str) -> None:
    """Register a page of the client's that its users may be sent back to after consent
    (a vehicle's redirect_uri must be one of these, exactly)."""
    _edit_redirect_uris(client_id, uri, add_redirect_uri)


@client.command("remove-redirect-uri")
@click.argument("client_id")
@click.argument("uri")
def client_remove_redirect_uri(client_id: str, uri: str) -> None:
    """Stop sending users back to `uri` (vehicles created before keep theirs)."""
    _edit_redirect_uris(client_id, uri, remove_redirect_uri)


def _edit_redirect_uris(
    client_id: str, uri: str, edit: Callable[[Session, str, str], Client]
) -> None:
    with _db().session() as session:
        try:
            c = edit(session, client_id, uri)
        except (LookupError, DomainError) as exc:
            _fail(str(exc))
            return
        listed = "\n  ".join(c.redirect_uris) or "-"
        click.echo(f"redirect URIs of {c.id}:\n  {listed}")


@client.command("set-provider")
@click.argument("client_id")
@click.argument("provider", type=click.Choice([p.value for p in Provider]))
@click.option("--oauth-client-id", required=True, help="The client's app id at the provider.")
@click.option(
    "--oauth-client-secret",
    envvar="CV_OAUTH_CLIENT_SECRET",
    prompt=True,
    hide_input=True,
    help="The app's secret (or CV_OAUTH_CLIENT_SECRET; prompted when absent).",
)
@click.option("--base-url", help="One base URL for the provider (sandbox, region or fake).")
@click.option(
    "--webhook-secret",
    envvar="CV_PROVIDER_WEBHOOK_SECRET",
    help="The secret the provider signs its webhooks with (Enode, Smartcar).",
)
def client_set_provider(
    client_id: str,
    provider: str,
    oauth_client_id: str,
    oauth_client_secret: str,
    base_url: str | None,
    webhook_secret: str | None,
) -> None:
    """Set a client's credentials (and base URL, webhook secret) for one provider."""
    with _db().session() as session:
        try:
            set_provider_credentials(
                session,
                client_id,
                Provider(provider),
                oauth_client_id=oauth_client_id,
                oauth_client_secret=oauth_client_secret,
                base_url=base_url,
                webhook_secret=webhook_secret,
            )
        except LookupError as exc:
            _fail(str(exc))
    click.echo(f"{provider} credentials set for client {client_id}")
