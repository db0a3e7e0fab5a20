"""``cv demo``: the local demo's client, pointed at every fake provider (``make run``)."""

from __future__ import annotations

from datetime import timedelta

import click

from api.cli.common import open_db as _db
from providers.names import Provider
from settings import get_settings
from store.models import Client
from workflows.clients import add_redirect_uri, create_client
from workflows.provider_credentials import set_provider_credentials
from workflows.user_tokens import mint_user_token

__all__ = ["demo"]

DEMO_CLIENT = "demo"
DEMO_USER = "demo-user"
DEMO_APP_ID = "demo-app"
DEMO_APP_SECRET = "demo-app-secret"


@click.group()
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
