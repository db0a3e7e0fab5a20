"""What every adapter offers, and the shared OAuth 2 code flow (on Authlib) that Smartcar,
Tesla and High Mobility specialize with a few overrides. Enode's link flow is its own.

An adapter is built per job from a client's credentials; its HTTP transport can be
injected, so tests run it against a fake without patching anything.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` fork and warns when it finds plain httpx, the
    # client this service uses throughout; the integration itself works the same.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.names import Provider, Scope

__all__ = [
    "AccountRef",
    "Adapter",
    "AppTokenCache",
    "CodeFlowAdapter",
    "Credentials",
    "Tokens",
    "VehicleInfo",
]


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


class Adapter:
    """The surface the domain uses. A provider sets its names and implements the reads."""

    provider: ClassVar[Provider]
    flow: ClassVar[Literal["code", "link"]]
    api_url: ClassVar[str]
    # Scopes the service always asks for, to validate the account (VIN, make).
    validation_scopes: ClassVar[tuple[str, ...]] = ()
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {}

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        token_cache: AppTokenCache | None = None,
    ) -> None:
        self.credentials = credentials
        self._timeout = timeout
        self._transport = transport
        self._token_cache = token_cache

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

    # -- account reads, for validation ---------------------------------------------------

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        raise NotImplementedError

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        raise NotImplementedError

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        raise NotImplementedError

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

    # A read (GET) that fails transiently is tried again at once, up to this many times
    # in all, when the provider asks for no longer a wait than `inline_wait_max`: one
    # flaky call then costs a moment, not a whole step's retry. Writes are tried once.
    read_tries: ClassVar[int] = 3
    inline_wait_max: ClassVar[float] = 2.0

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures are retryable, non-2xx answers classified."""
        tries = self.read_tries if method in ("GET", "HEAD") else 1
        for attempt in range(1, tries + 1):
            try:
                return self._send_once(method, url, what, **kwargs)
            except RetryableError as exc:
                wait = exc.retry_after if exc.retry_after is not None else 0.05 * 2**attempt
                if attempt == tries or wait > self.inline_wait_max:
                    raise
                time.sleep(random.uniform(wait / 2, wait) if exc.retry_after is None else wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport) as http:
                response = http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise RetryableError(self.provider, f"{what}: {type(exc).__name__}") from exc
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


class CodeFlowAdapter(Adapter):
    """OAuth 2 authorization-code flow on Authlib: authorize URL (with PKCE where the
    provider asks for it), code exchange, and API calls with the user's bearer token."""

    flow = "code"
    authorize_url: ClassVar[str]
    token_url: ClassVar[str]
    # How the app authenticates at the token endpoint (Authlib's names, or our own).
    token_auth_method: ClassVar[str] = "client_secret_basic"
    uses_pkce: ClassVar[bool] = False

    def authorize_params(self) -> dict[str, str]:
        """Extra query parameters of the authorize URL (a provider override)."""
        return {}

    def token_params(self) -> dict[str, str]:
        """Extra fields of the token request (a provider override)."""
        return {}

    def authorization_url(
        self,
        *,
        state: str,
        redirect_uri: str,
        scopes: Sequence[str],
        code_verifier: str | None = None,
    ) -> str:
        with self._oauth(redirect_uri, scopes) as oauth:
            url, _ = oauth.create_authorization_url(
                self._endpoint(self.authorize_url),
                state=state,
                code_verifier=code_verifier if self.uses_pkce else None,
                **self.authorize_params(),
            )
        return str(url)

    def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None = None
    ) -> Tokens:
        extra = dict(self.token_params())
        if self.uses_pkce and code_verifier:
            extra["code_verifier"] = code_verifier
        with self._oauth(redirect_uri, ()) as oauth:
            try:
                token = oauth.fetch_token(
                    self._endpoint(self.token_url),
                    grant_type="authorization_code",
                    code=code,
                    **extra,
                )
            except httpx.TransportError as exc:
                raise RetryableError(self.provider, f"token request: {type(exc).__name__}") from exc
            except OAuthError as exc:  # a 2xx body carrying an OAuth error
                raise self._oauth_error(exc.error) from exc
        return self._tokens(token)

    def _api(self, method: str, path: str, account: AccountRef) -> Any:
        url = self._endpoint(self.api_url).rstrip("/") + path
        headers = {"Authorization": f"Bearer {account.require_tokens().access_token}"}
        return self._send(method, url, f"{method} {path}", headers=headers).json()

    @contextmanager
    def _oauth(self, redirect_uri: str, scopes: Sequence[str]) -> Iterator[OAuth2Client]:
        client = OAuth2Client(
            client_id=self.credentials.client_id,
            client_secret=self.credentials.client_secret,
            token_endpoint_auth_method=self.token_auth_method,
            redirect_uri=redirect_uri,
            scope=" ".join(self.provider_scopes(scopes)) or None,
            code_challenge_method="S256" if self.uses_pkce else None,
            timeout=self._timeout,
            transport=self._transport,
        )
        self.register_auth_methods(client)
        client.register_compliance_hook("access_token_response", self._check_token_response)
        client.register_compliance_hook("refresh_token_response", self._check_token_response)
        with client:
            yield client

    def register_auth_methods(self, client: OAuth2Client) -> None:
        """Register a token-endpoint auth method Authlib lacks (a provider override)."""

    def _check_token_response(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableError(
                self.provider,
                f"token endpoint answered {response.status_code}",
                parse_retry_after(response),
            )
        try:
            error = str(response.json().get("error", ""))
        except ValueError:
            error = ""
        raise self._oauth_error(error, response.status_code)

    def _oauth_error(self, error: str, status: int | None = None) -> PermanentError:
        where = f"token endpoint answered {status or 'an error'} {error}".strip()
        if error in ("invalid_grant", "invalid_request"):
            return PermanentError(self.provider, Reason.AUTH_CODE_INVALID, where)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, where)

    @staticmethod
    def _tokens(token: dict[str, Any]) -> Tokens:
        expires_at = None
        if token.get("expires_in") is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=float(token["expires_in"]))
        return Tokens(
            access_token=str(token["access_token"]),
            refresh_token=token.get("refresh_token"),
            expires_at=expires_at,
        )
