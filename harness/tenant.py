"""A client of the service (a tenant) set up as an operator would: its OAuth app at each
fake provider, and user tokens signed with its secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from providers.fakes.serve import FakeServer
from providers.names import Provider
from store.db import Database
from store.models import Client
from workflows.clients import add_redirect_uri, create_client
from workflows.provider_credentials import set_provider_credentials
from workflows.user_tokens import mint_user_token

__all__ = ["APP_ID", "APP_SECRET", "CLIENT_PAGE", "Tenant", "make_tenant", "register_app"]

# The tenant's OAuth application, registered at every fake.
APP_ID = "app-1"
APP_SECRET = "app-1-secret"


@dataclass
class Tenant:
    client_id: str
    signing_secret: str
    db: Database

    def headers(
        self, user: str = "user-1", ttl: timedelta = timedelta(hours=1), *, admin: bool = False
    ) -> dict[str, str]:
        """A user's request headers: the client id and a fresh user token."""
        with self.db.session() as session:
            client = session.get(Client, self.client_id)
            assert client is not None
            token = mint_user_token(client, user, ttl, admin=admin)
        return {"x-client-id": self.client_id, "authorization": f"Bearer {token}"}


# The client's own page its users come back to, registered for every tenant.
CLIENT_PAGE = "https://client.example/done"


def make_tenant(db: Database, fakes: Mapping[str, FakeServer] | None, name: str = "Acme") -> Tenant:
    """A client with credentials for every provider in `fakes`, each pointing at its fake,
    and its page registered as a redirect URI."""
    with db.session() as session:
        client = create_client(session, name)
        add_redirect_uri(session, client.id, CLIENT_PAGE)
        for provider, server in (fakes or {}).items():
            set_provider_credentials(
                session,
                client.id,
                Provider(provider),
                oauth_client_id=APP_ID,
                oauth_client_secret=APP_SECRET,
                base_url=server.url,
            )
        return Tenant(client.id, client.signing_secret, db)


def register_app(server: FakeServer, *redirect_uris: str) -> None:
    """The tenant's OAuth app at this fake, with the callbacks it may send users back to."""
    server.fake.apps[APP_ID] = {"client_secret": APP_SECRET, "redirect_uris": list(redirect_uris)}
