"""``cv``: the operators' command-line tool. ``cv --help`` lists the commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.cli_common import fail as _fail
from api.cli_common import open_db as _db
from api.cli_keys import keys
from api.cli_prune import prune
from api.cli_vehicles import vehicles
from providers.names import Provider
from settings import get_settings
from store.catalogue import load_catalogue
from store.migrate import upgrade
from store.models import Client
from workflows.clients import (
    add_redirect_uri,
    create_client,
    mint_user_token,
    remove_redirect_uri,
    set_provider_credentials,
)
from workflows.errors import DomainError

__all__ = ["main"]

DEMO_CLIENT = "demo"
DEMO_USER = "demo-user"
DEMO_APP_ID = "demo-app"
DEMO_APP_SECRET = "demo-app-secret"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate Connected Vehicles: database, clients, tokens, vehicles.

    Settings come from CV_* environment variables (and ./.env): CV_DATABASE_URL,
    CV_SECRET_KEY, CV_BROKER_URL, CV_PUBLIC_URL.
    """


main.add_command(vehicles)
main.add_command(keys)
main.add_command(prune)


# -- database and catalogue ------------------------------------------------------------------


@main.group()
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


@main.group()
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


# -- clients ----------------------------------------------------------------------------------


@main.group()
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
    from workflows.clients import rotate_signing_secret

    with _db().session() as session:
        try:
            c = rotate_signing_secret(session, client_id, timedelta(seconds=grace))
        except LookupError as exc:
            _fail(str(exc))
            return
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


@main.group()
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


# -- client webhooks ----------------------------------------------------------------------------


@main.group()
def webhooks() -> None:
    """Clients' webhook endpoints and their deliveries."""


@webhooks.command("add")
@click.argument("client_id")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="An event type (repeatable; default all).")
def webhooks_add(client_id: str, url: str, events: tuple[str, ...]) -> None:
    """Register an endpoint; prints its id and signing secret (shown once)."""
    from workflows import webhooks as hooks
    from workflows.errors import DomainError

    with _db().session() as session:
        if session.get(Client, client_id) is None:
            _fail(f"no client {client_id!r}")
        try:
            endpoint = hooks.create_endpoint(
                session,
                client_id,
                url,
                list(events),
                allow_private=get_settings().webhooks_allow_private,
            )
        except DomainError as exc:
            _fail(exc.message)
            return
    click.echo(f"endpoint id:     {endpoint.id}")
    click.echo(f"signing secret:  {endpoint.secret}")


@webhooks.command("list")
@click.argument("client_id")
def webhooks_list(client_id: str) -> None:
    """A client's endpoints."""
    from store.models import WebhookEndpoint

    with _db().session() as session:
        rows = session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.client_id == client_id)
        ).scalars()
        for e in rows:
            state = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
            click.echo(f"{e.id}  {state:30}  {','.join(e.event_types) or 'all'}  {e.url}")


@webhooks.command("deliveries")
@click.option("--status", type=click.Choice(["pending", "succeeded", "exhausted", "disabled"]))
@click.option("--limit", default=50, show_default=True)
def webhooks_deliveries(status: str | None, limit: int) -> None:
    """Deliveries, newest first: status, attempts, last answer."""
    from store.models import WebhookDelivery

    stmt = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    with _db().session() as session:
        for d in session.execute(stmt).scalars():
            answer = d.last_status or d.last_error or "-"
            click.echo(
                f"{d.id}  {d.status:10}  tries {d.attempts}  last {answer}  "
                f"{d.event_type}  event {d.event_id}"
            )


@webhooks.command("replay")
@click.argument("delivery_id")
def webhooks_replay(delivery_id: str) -> None:
    """Send a delivery again (the same webhook-id), on a fresh schedule."""
    from api import jobs
    from workflows import webhooks as hooks
    from workflows.errors import DomainError

    with _db().session() as session:
        try:
            hooks.replay(session, delivery_id)
        except DomainError as exc:
            _fail(exc.message)
    jobs.deliver_webhooks()
    click.echo(f"{delivery_id} will be sent again")


# -- the local demo -----------------------------------------------------------------------------


@main.group()
def demo() -> None:
    """The local demo (`make run`)."""


@demo.command("seed")
@click.option("--fakes-url", required=True, help="Where the fake providers listen.")
@click.option("--flower-url", default="http://127.0.0.1:5555", show_default=True)
def demo_seed(fakes_url: str, flower_url: str) -> None:
    """Create the demo client, point it at every fake provider, print how to start."""
    settings = get_settings()
    base = fakes_url.rstrip("/")
    with _db().session() as session:
        c = session.get(Client, DEMO_CLIENT) or create_client(session, "Demo", DEMO_CLIENT)
        for provider in Provider:
            set_provider_credentials(
                session,
                c.id,
                provider,
                oauth_client_id=DEMO_APP_ID,
                oauth_client_secret=DEMO_APP_SECRET,  # the fakes' demo app, nothing real
                base_url=f"{base}/{provider.value.lower()}",
            )
        # The page the demo's users come back to: registered, as any client's must be.
        add_redirect_uri(session, c.id, f"{base}/smartcar/_fake/client-return")
        user_token = mint_user_token(c, DEMO_USER, timedelta(days=1))
    flower_user = settings.flower_basic_auth.get_secret_value().split(":", 1)
    click.echo(
        f"""
  GraphQL (GraphiQL in a browser): {settings.public_url}/graphql
  Flower:        {flower_url}  (login {flower_user[0]} / {flower_user[-1]})
  Demo client:   {c.id}  (every provider, each on its fake under {base}/)
  User token:    {user_token}
  Client page:   {base}/smartcar/_fake/client-return  (use as redirect_uri)
"""
    )


if __name__ == "__main__":
    main()
