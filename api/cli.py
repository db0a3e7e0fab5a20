"""``cv``: the operators' command-line tool. ``cv --help`` lists the commands."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import select

from providers.names import Provider
from settings import get_settings
from store.catalogue import load_catalogue
from store.db import Database, open_database
from store.migrate import upgrade
from store.models import Client, ConnectedVehicle
from workflows.clients import create_client, mint_user_token, set_provider_credentials
from workflows.machine import Status

__all__ = ["main"]

DEMO_CLIENT = "demo"
DEMO_USER = "demo-user"
DEMO_APP_ID = "demo-app"
DEMO_APP_SECRET = "demo-app-secret"


def _db() -> Database:
    s = get_settings()
    # The API's dispatcher: a step a command makes due is enqueued when it commits.
    from api import jobs

    return open_database(
        s.database_url, s.secret_key.get_secret_value(), dispatcher=jobs.dispatcher()
    )


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Operate Connected Vehicles: database, clients, tokens, vehicles.

    Settings come from CV_* environment variables (and ./.env): CV_DATABASE_URL,
    CV_SECRET_KEY, CV_BROKER_URL, CV_PUBLIC_URL.
    """


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
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
@click.option("--admin", is_flag=True, help="A client administrator's token (webhooks).")
def token_mint(client_id: str, user_id: str, ttl: int, admin: bool) -> None:
    """Mint a user token signed with the client's secret (for trying the API)."""
    with _db().session() as session:
        c = session.get(Client, client_id)
        if c is None:
            _fail(f"no client {client_id!r}")
            return
        click.echo(mint_user_token(c, user_id, timedelta(seconds=ttl), admin=admin))


# -- vehicles ---------------------------------------------------------------------------------


@main.group()
def vehicles() -> None:
    """Connected vehicles."""


@vehicles.command("list")
@click.option("--client", "client_id", help="Only this client's vehicles.")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--limit", default=50, show_default=True)
def vehicles_list(client_id: str | None, status: str | None, limit: int) -> None:
    """List connected vehicles, newest first."""
    stmt = select(ConnectedVehicle).order_by(ConnectedVehicle.created_at.desc()).limit(limit)
    if client_id:
        stmt = stmt.where(ConnectedVehicle.client_id == client_id)
    if status:
        stmt = stmt.where(ConnectedVehicle.status == status)
    with _db().session() as session:
        rows = list(session.execute(stmt).scalars())
    if not rows:
        click.echo("no connected vehicles")
        return
    click.echo(
        f"{'id':36}  {'status':15}  {'provider':12}  {'client':12}  {'failure':24}  "
        f"{'step':10}  {'tries':5}  vin"
    )
    for v in rows:
        failure = v.failure_code or "-"
        if v.failure_retryable:
            failure += " (r)"
        click.echo(
            f"{v.id:36}  {v.status:15}  {v.provider:12}  {v.client_id:12}  {failure:24}  "
            f"{v.step or '-':10}  {v.attempts or 0:<5}  {v.vin or '-'}"
        )


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    ago = (datetime.now(UTC) - value).total_seconds()
    relative = f"{abs(ago):.0f}s {'ago' if ago >= 0 else 'from now'}"
    return f"{value.isoformat(timespec='seconds')} ({relative})"


@vehicles.command("show")
@click.argument("vehicle_id")
def vehicles_show(vehicle_id: str) -> None:
    """One vehicle as operators need it: its status and failure, the step due and its
    attempts, the last error, when its token expires and is refreshed, when its data was
    last fetched. Never a token or a code: those columns are not even read."""
    from sqlalchemy.orm import load_only

    from store.crypto import Encrypted
    from store.models import VehicleSnapshot

    plain = [c.key for c in ConnectedVehicle.__table__.columns if not isinstance(c.type, Encrypted)]
    stmt = (
        select(ConnectedVehicle)
        .options(load_only(*[getattr(ConnectedVehicle, k) for k in plain], raiseload=True))
        .where(ConnectedVehicle.id == vehicle_id)
    )
    with _db().session() as session:
        v = session.execute(stmt).scalar_one_or_none()
        if v is None:
            _fail(f"no connected vehicle {vehicle_id!r}")
            return
        snap = session.get(VehicleSnapshot, vehicle_id)
        failure = "-"
        if v.failure_code:
            failure = f"{v.failure_code}{' (retryable)' if v.failure_retryable else ''}"
        rows = [
            ("id", v.id),
            ("status", v.status),
            ("failure", failure),
            ("provider", v.provider),
            ("client / user", f"{v.client_id} / {v.user_id}"),
            ("vehicle", f"{v.vehicle_id}, vin {v.vin or '-'}"),
            ("scope", ", ".join(v.scope or []) or "-"),
            ("step due", f"{v.step} at {_when(v.step_due_at)}" if v.step else "-"),
            ("attempts", str(v.attempts or 0)),
            ("last error", v.last_error or "-"),
            ("token expires", _when(v.token_expires_at)),
            ("refresh due", _when(v.refresh_due_at)),
            ("data fetched", _when(snap.fetched_at if snap else None)),
            ("fetch asked", _when(snap.fetch_requested_at if snap else None)),
            (
                "fetch failed",
                f"{_when(snap.fetch_failed_at)}: {snap.fetch_error}"
                if snap and snap.fetch_failed_at
                else "-",
            ),
            ("created", _when(v.created_at)),
            ("updated", _when(v.updated_at)),
            ("authorized", _when(v.authorized_at)),
        ]
    for name, value in rows:
        click.echo(f"{name + ':':15} {value}")


@vehicles.command("redrive")
@click.argument("vehicle_id")
@click.option("--force", is_flag=True, help="Also when the failure is not retryable.")
def vehicles_redrive(vehicle_id: str, force: bool) -> None:
    """Take a failed vehicle back to work: validate again when it holds tokens, make a
    new link (Enode), or give it a new authorization URL for its user."""
    from workflows.authorization import redrive
    from workflows.errors import DomainError

    with _db().session() as session:
        try:
            vehicle = redrive(session, get_settings(), vehicle_id, force=force)
        except DomainError as exc:
            _fail(f"{exc.code.value}: {exc.message}")
            return
    click.echo(f"{vehicle.id} is {vehicle.status} again")
    if vehicle.step:
        click.echo(f"enqueued: {vehicle.step}")
    elif vehicle.authorization_url:
        click.echo(f"the user must consent again: {vehicle.authorization_url}")


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
            endpoint = hooks.create_endpoint(session, client_id, url, list(events))
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
