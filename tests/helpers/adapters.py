"""Adapters made and connected as the service makes and connects them, straight against
a provider's fake (no service in between): the adapter contract's and the providers'
own tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from harness.tenant import APP_ID, APP_SECRET
from providers import (
    AccountRef,
    Adapter,
    CodeFlowAdapter,
    Credentials,
    EnodeAdapter,
    adapter_for,
)
from providers.fakes.browser import consent
from providers.fakes.serve import FakeServer
from tests.helpers.providers_table import ProviderCase

__all__ = [
    "CALLBACK",
    "VERIFIER",
    "Connection",
    "MemoryTokens",
    "back_query",
    "connect",
    "consent_url",
    "make",
]

CALLBACK = "http://testserver/oauth/callback"
VERIFIER = "v" * 64


class MemoryTokens:
    """An app-token cache kept in memory (the service keeps it in the database)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, datetime]] = {}

    def get(self, key: str) -> tuple[str, datetime] | None:
        return self.entries.get(key)

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        self.entries[key] = (token, expires_at)


def make(case: ProviderCase, url: str, **kw: object) -> Adapter:
    secret = str(kw.pop("secret", APP_SECRET))
    timeout = float(kw.pop("timeout", 2.0))  # type: ignore[arg-type]
    return adapter_for(case.name, Credentials(APP_ID, secret, url), timeout=timeout, **kw)  # type: ignore[arg-type]


def consent_url(case: ProviderCase, adapter: Adapter, scopes=("location",), user="u-1") -> str:
    if isinstance(adapter, CodeFlowAdapter):
        return adapter.authorization_url(
            state="s-1", redirect_uri=CALLBACK, scopes=list(scopes), code_verifier=VERIFIER
        )
    assert isinstance(adapter, EnodeAdapter)
    return adapter.create_link(user_id=user, redirect_uri=f"{CALLBACK}?state=s-1", scopes=scopes)


@dataclass
class Connection:
    adapter: Adapter
    account: AccountRef
    code: str | None


def back_query(location: str) -> dict[str, str]:
    assert location.startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def connect(
    case: ProviderCase, server: FakeServer, account: str = "owner", scopes=("location",)
) -> Connection:
    """What the user and the service do: consent, come back, (exchange the code)."""
    adapter = make(case, server.url, token_cache=MemoryTokens())
    back = back_query(consent(consent_url(case, adapter, scopes), account=account))
    assert back["state"] == "s-1"
    if isinstance(adapter, CodeFlowAdapter):
        tokens = adapter.exchange_code(back["code"], redirect_uri=CALLBACK, code_verifier=VERIFIER)
        return Connection(adapter, AccountRef(tokens=tokens), back["code"])
    assert "code" not in back  # a link flow comes back with the state alone
    return Connection(adapter, AccountRef(user_id="u-1"), None)
