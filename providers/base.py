"""What every adapter offers (:class:`Adapter`), the values it trades in (credentials,
tokens, an account, a vehicle), and the request plumbing every provider shares. The
OAuth 2 code flow that Smartcar, Tesla and High Mobility specialize is
``providers.code_flow``; Enode's link flow is its own (``providers.enode``).

An adapter is cheap: built per job from a client's credentials, it sends over the
process's pooled transport of each provider origin (``providers.http``), never a client
or SSL context of its own. A transport can be injected, so tests may run it against a
fake without patching anything.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

import httpx

from providers.data import VehicleData
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import (
    DeadlineExceeded,
    MeteredTransport,
    concurrently,
    deadline,
    pooled_transport,
)
from providers.names import Provider, Scope
from providers.retry import RetryPolicy
from providers.webhooks import ProviderEvent

__all__ = [
    "AccountRef",
    "Adapter",
    "AppTokenCache",
    "Credentials",
    "Tokens",
    "VehicleInfo",
    "transport_failure",
]


def transport_failure(provider: str, what: str, exc: Exception) -> RetryableError:
    """A request that got no answer. A connect error never left this host: safe to send
    again. Anything later (a read timeout, a dropped connection, our own deadline) may
    have been processed by the provider with its answer lost: the error says so, for
    requests that spend something single use (a code, a rotating refresh token)."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    detail = f"{what}: {type(exc).__name__}"
    return RetryableError(provider, detail, answer_lost=not never_sent)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    base_url: str | None = None

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"Credentials(client_id={self.client_id!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at!r})"

    def valid_for(self, seconds: float) -> bool:
        """Still valid `seconds` from now (a token without an expiry is trusted)."""
        if self.expires_at is None:
            return True
        return self.expires_at > datetime.now(UTC) + timedelta(seconds=seconds)


@dataclass(frozen=True)
class AccountRef:
    """Whose account to read: the user's tokens (code flow), or the provider-side user id
    that the service reads with its own app token (Enode)."""

    tokens: Tokens | None = None
    user_id: str | None = None

    def require_tokens(self) -> Tokens:
        if self.tokens is None:
            raise ValueError("this provider reads an account with the user's tokens")
        return self.tokens


@dataclass(frozen=True)
class VehicleInfo:
    id: str
    make: str
    model: str | None
    year: int | None
    vin: str | None


class AppTokenCache(Protocol):
    """Where an app's own (client-credentials) token is kept between jobs and workers."""

    def get(self, key: str) -> tuple[str, datetime] | None: ...

    def put(self, key: str, token: str, expires_at: datetime) -> None: ...


@functools.cache
def _split(endpoints: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(path.strip("/").split("/")) for path in endpoints)


class Adapter:
    """The surface the domain uses. A provider sets its names and implements the reads."""

    provider: ClassVar[Provider]
    flow: ClassVar[Literal["code", "link"]]  # for people; the workflow reads the flags below
    api_url: ClassVar[str]
    # How consent works, as the workflow asks it (one interface for both flows):
    # - the authorization URL is made by a call to the provider (a job), not built here;
    link_made_at_provider: ClassVar[bool] = False
    # - the user comes back with a single-use code to exchange for the user's tokens
    #   (else: coming back is the news, and the account is read with the app's token);
    returns_code: ClassVar[bool] = False
    # - the authorization URL carries a PKCE challenge whose verifier the exchange sends;
    uses_pkce: ClassVar[bool] = False
    # - the user's tokens expire and are refreshed (a refresh step keeps them valid);
    refreshes: ClassVar[bool] = False
    # - a refresh token is single use: a refresh whose answer was lost cannot be redone.
    single_use_refresh: ClassVar[bool] = False
    # The header that carries the provider's webhook signature; None: no webhooks.
    webhook_header: ClassVar[str | None] = None
    # Scopes the service always asks for, to validate the account (VIN, make).
    validation_scopes: ClassVar[tuple[str, ...]] = ()
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {}
    # The paths (of the production URLs) it calls, `{id}` for a segment that varies: the
    # `endpoint` label of its calls' metrics; a path not among them counts as `other`.
    endpoints: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        token_cache: AppTokenCache | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.credentials = credentials
        self._timeout = timeout
        self._transport = transport
        self._token_cache = token_cache
        self._policy = policy or RetryPolicy(max_attempts=1, base=0.0, cap=0.0)
        # Inline re-tries left to this adapter (one attempt of a step): see providers.retry.
        self._inline_left = self._policy.inline_retries
        self._clients: dict[str, httpx.Client] = {}

    def provider_scopes(self, scopes: Sequence[str]) -> list[str]:
        """The provider's scope strings for ours, plus those validation needs."""
        out: list[str] = list(self.validation_scopes)
        for scope in scopes:
            for name in self.scope_map.get(Scope(scope), ()):
                if name not in out:
                    out.append(name)
        return out

    @classmethod
    def callback_error(cls, error: str) -> Reason:
        """The reason for the ``error`` parameter of the provider's redirect back."""
        return Reason.AUTHORIZATION_DENIED

    # -- consent ------------------------------------------------------------------------------

    def start_consent(
        self,
        *,
        state: str,
        callback_url: str,
        scopes: Sequence[str],
        user_id: str,
        code_verifier: str | None = None,
    ) -> str:
        """The URL to send the user to. A code flow builds it here (no network); a link
        flow (``link_made_at_provider``) asks the provider for it, so a job calls this."""
        raise NotImplementedError

    def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None = None
    ) -> Tokens:
        """Spend a single-use code (``returns_code`` flows only)."""
        raise NotImplementedError(f"{self.provider} returns no code")

    def account_of(self, *, tokens: Tokens | None, user_id: str | None) -> AccountRef:
        """Whose account a connected vehicle reads: its tokens (code flow) or its
        provider-side user (link flow)."""
        return AccountRef(tokens=tokens, user_id=user_id)

    # -- the user's tokens --------------------------------------------------------------------

    def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens for `tokens` (``refreshes`` flows only). A refused refresh
        (``invalid_grant``: consent revoked, the refresh token spent or expired) is
        PermanentError(ACCESS_REVOKED)."""
        raise NotImplementedError(f"{self.provider} has no user tokens to refresh")

    def ensure_valid(
        self, tokens: Tokens, *, ahead: float, save: Callable[[Tokens], None]
    ) -> Tokens:
        """Tokens valid for at least `ahead` seconds more: `tokens` themselves, or a
        refreshed pair, handed to `save` (which commits it) before it is returned and
        used. The caller holds the vehicle's row lock: one refresh at a time."""
        if not self.refreshes or tokens.valid_for(ahead):
            return tokens
        fresh = self.refresh(tokens)
        save(fresh)
        return fresh

    # -- the car's data -----------------------------------------------------------------------

    def read_data(self, account: AccountRef, vehicle_id: str, parts: set[str]) -> VehicleData:
        """The car's live data: the `parts` asked for (``providers.data.PARTS_OF_SCOPE``),
        in the service's units. A part answered in a shape this adapter cannot read is
        None, with a line in ``problems``; a car that cannot answer now (asleep) is a
        RetryableError; lost access is PermanentError(ACCESS_REVOKED)."""
        raise NotImplementedError

    # -- webhooks (class methods: no credentials needed to read them) ---------------------------

    @classmethod
    def verify_webhook(cls, secret: str, raw: bytes, header: str | None) -> bool:
        """Whether `header` signs the raw body `raw` with `secret` (constant time)."""
        return False

    @classmethod
    def webhook_challenge(cls, body: Any) -> str | None:
        """The challenge of a verification request (Smartcar's VERIFY), else None."""
        return None

    @classmethod
    def answer_challenge(cls, secret: str, challenge: str) -> str:
        raise NotImplementedError

    @classmethod
    def delivery_key(cls, raw: bytes, body: Any) -> str:
        """What identifies a delivery, so that a replay is stored once: the provider's
        own id, or the body's SHA-256."""
        return hashlib.sha256(raw).hexdigest()

    @classmethod
    def is_delivery(cls, body: Any) -> bool:
        """Whether a verified body has the shape of this provider's deliveries (a JSON
        object by default): anything else is refused, and stored nowhere."""
        return isinstance(body, dict)

    @classmethod
    def parse_webhook(cls, body: Any) -> list[ProviderEvent]:
        """What a verified delivery tells, in the domain's words."""
        return []

    # -- account reads, for validation ---------------------------------------------------

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        raise NotImplementedError

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        raise NotImplementedError

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        raise NotImplementedError

    def inspect(self, account: AccountRef, vehicle_id: str) -> tuple[VehicleInfo, set[str]]:
        """The vehicle and the scopes granted for it, read concurrently (a provider that
        answers both in one call overrides this)."""
        info, granted = concurrently(
            lambda: self.read_vehicle(account, vehicle_id),
            lambda: self.granted_scopes(account, vehicle_id),
        )
        assert isinstance(info, VehicleInfo) and isinstance(granted, set)
        return info, granted

    def revoke(self, account: AccountRef, vehicle_id: str | None) -> bool:
        """Give the access back at the provider. False: the provider has no way to (the
        service then just forgets the tokens)."""
        return False

    # -- HTTP plumbing ---------------------------------------------------------------------

    def _endpoint(self, production: str) -> str:
        """A production URL, or the same path under the configured base URL."""
        base = self.credentials.base_url
        if not base:
            return production
        return base.rstrip("/") + httpx.URL(production).path

    def _transport_for(self, url: str) -> httpx.BaseTransport:
        """The pooled (or injected) transport of `url`, every call on it counted."""
        inner = self._transport or pooled_transport(url)
        base = self.credentials.base_url
        prefix = httpx.URL(base).path if base else ""
        return MeteredTransport(inner, self.provider, _split(self.endpoints), prefix)

    def _client(self, url: str) -> httpx.Client:
        """A client over the pooled transport of `url`'s origin (cheap: no pool, no SSL
        context of its own), kept for this adapter's calls; never closed, since closing
        it would close the shared transport."""
        origin = httpx.URL(url).copy_with(path="/", query=None, fragment=None)
        key = str(origin)
        client = self._clients.get(key)
        if client is None:
            client = httpx.Client(transport=self._transport_for(url), timeout=self._timeout)
            self._clients[key] = client
        return client

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures are retryable, non-2xx answers classified. A
        read that fails transiently is tried again at once while this attempt's inline
        budget lasts and the provider asks for a short wait; writes are tried once."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send_once(method, url, what, **kwargs)
            except RetryableError as exc:
                wait = self._policy.inline_wait(attempt, exc.retry_after)
                if (
                    method not in ("GET", "HEAD")
                    or self._inline_left <= 0
                    or wait > self._policy.inline_wait_max
                ):
                    raise
                self._inline_left -= 1
                time.sleep(wait)

    def _send_once(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            with deadline(self._timeout):
                response = self._client(url).request(method, url, timeout=self._timeout, **kwargs)
        except (httpx.TransportError, DeadlineExceeded) as exc:
            raise transport_failure(self.provider, what, exc) from exc
        if not response.is_success:
            raise self._classify(response, what)
        return response

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        """Turn a non-2xx answer into a classified error (a provider override)."""
        status = response.status_code
        detail = f"{what} answered {status}"
        if status == 429 or status >= 500:
            return RetryableError(self.provider, detail, parse_retry_after(response))
        if status in (401, 403):
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)
