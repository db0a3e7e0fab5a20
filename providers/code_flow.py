"""The shared OAuth 2 authorization-code flow (on Authlib) that Smartcar, Tesla and High
Mobility specialize with a few overrides: the authorize URL (with PKCE where the provider
asks for it), the code exchange, the refresh grant, and API calls with the user's bearer
token. Enode's link flow is its own (``providers.enode``).

Authlib's httpx client is imported here, once, with its warning about plain httpx
silenced; Enode's app-token request takes it from here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` fork and warns when it finds plain httpx, the
    # client this service uses throughout; the integration itself works the same.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from providers.base import Adapter
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import DeadlineExceeded, deadline
from providers.plumbing import transport_failure
from providers.values import AccountRef, Tokens

__all__ = ["CodeFlowAdapter", "OAuth2Client"]


class CodeFlowAdapter(Adapter):
    """OAuth 2 authorization-code flow on Authlib: authorize URL (with PKCE where the
    provider asks for it), code exchange, and API calls with the user's bearer token."""

    flow = "code"
    returns_code = True
    refreshes = True
    authorize_url: ClassVar[str]
    token_url: ClassVar[str]
    # How the app authenticates at the token endpoint (Authlib's names, or our own).
    token_auth_method: ClassVar[str] = "client_secret_basic"

    def authorize_params(self) -> dict[str, str]:
        """Extra query parameters of the authorize URL (a provider override)."""
        return {}

    def token_params(self) -> dict[str, str]:
        """Extra fields of the token request (a provider override)."""
        return {}

    def start_consent(
        self,
        *,
        state: str,
        callback_url: str,
        scopes: Sequence[str],
        user_id: str,
        code_verifier: str | None = None,
    ) -> str:
        return self.authorization_url(
            state=state, redirect_uri=callback_url, scopes=scopes, code_verifier=code_verifier
        )

    def authorization_url(
        self,
        *,
        state: str,
        redirect_uri: str,
        scopes: Sequence[str],
        code_verifier: str | None = None,
    ) -> str:
        """The provider's authorize URL: local work, no HTTP client (Authlib's helpers)."""
        extra: dict[str, str] = dict(self.authorize_params())
        if self.uses_pkce and code_verifier:
            extra["code_challenge"] = create_s256_code_challenge(code_verifier)
            extra["code_challenge_method"] = "S256"
        return str(
            prepare_grant_uri(
                self._endpoint(self.authorize_url),
                client_id=self.credentials.client_id,
                response_type="code",
                redirect_uri=redirect_uri,
                scope=" ".join(self.provider_scopes(scopes)) or None,
                state=state,
                **extra,
            )
        )

    def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None = None
    ) -> Tokens:
        extra = dict(self.token_params())
        if self.uses_pkce and code_verifier:
            extra["code_verifier"] = code_verifier
        oauth = self._oauth(redirect_uri)
        try:
            with deadline(self._timeout):
                token = oauth.fetch_token(
                    self._endpoint(self.token_url),
                    grant_type="authorization_code",
                    code=code,
                    **extra,
                )
        except (httpx.TransportError, DeadlineExceeded) as exc:
            raise transport_failure(self.provider, "token request", exc) from exc
        except OAuthError as exc:  # a 2xx body carrying an OAuth error
            raise self._oauth_error(exc.error) from exc
        return self._tokens(token)

    def refresh(self, tokens: Tokens) -> Tokens:
        """Authlib's refresh grant at the token endpoint. A provider that rotates sends a
        new refresh token; one that does not leaves the old one in force (kept here)."""
        if not tokens.refresh_token:
            raise PermanentError(self.provider, Reason.ACCESS_REVOKED, "no refresh token held")
        oauth = self._oauth(None)
        try:
            with deadline(self._timeout):
                token = oauth.refresh_token(
                    self._endpoint(self.token_url),
                    refresh_token=tokens.refresh_token,
                    **self.refresh_params(),
                )
        except (httpx.TransportError, DeadlineExceeded) as exc:
            raise transport_failure(self.provider, "token refresh", exc) from exc
        except OAuthError as exc:  # a 2xx body carrying an OAuth error
            raise self._refused(str(exc.error or "")) from exc
        except PermanentError as exc:  # a 4xx, from the compliance hook
            raise self._refused(getattr(exc, "oauth_error", "")) from exc
        fresh = self._tokens(token)
        if fresh.refresh_token is None:
            fresh = Tokens(fresh.access_token, tokens.refresh_token, fresh.expires_at)
        return fresh

    def refresh_params(self) -> dict[str, str]:
        """Extra fields of the refresh request (a provider override)."""
        return {}

    def _refused(self, error: str) -> PermanentError:
        """Only `invalid_grant` says the user's grant is gone (revoked, the refresh token
        spent or expired); any other refusal (`invalid_client`, `invalid_request`) is the
        service's own request or app at fault, and must not cost users their access."""
        reason = Reason.ACCESS_REVOKED if error == "invalid_grant" else Reason.PROVIDER_REJECTED
        return PermanentError(self.provider, reason, f"token refresh refused: {error or 'error'}")

    def _api(self, method: str, path: str, account: AccountRef) -> Any:
        url = self._endpoint(self.api_url).rstrip("/") + path
        headers = {"Authorization": f"Bearer {account.require_tokens().access_token}"}
        return self._send(method, url, f"{method} {path}", headers=headers).json()

    def _oauth(self, redirect_uri: str | None) -> OAuth2Client:
        """Authlib's client for the token endpoint, over the pooled transport. Not used
        as a context manager: closing it would close the shared transport."""
        token_url = self._endpoint(self.token_url)
        client = OAuth2Client(
            client_id=self.credentials.client_id,
            client_secret=self.credentials.client_secret,
            token_endpoint_auth_method=self.token_auth_method,
            redirect_uri=redirect_uri,
            timeout=self._timeout,
            transport=self._transport_for(token_url),
        )
        self.register_auth_methods(client)
        client.register_compliance_hook("access_token_response", self._check_token_response)
        client.register_compliance_hook("refresh_token_response", self._check_token_response)
        return client

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
                # a gateway gave up waiting: the provider behind it may have done the work
                answer_lost=response.status_code in (502, 504),
            )
        try:
            error = str(response.json().get("error", ""))
        except ValueError:
            error = ""
        raise self._oauth_error(error, response.status_code)

    def _oauth_error(self, error: str, status: int | None = None) -> PermanentError:
        where = f"token endpoint answered {status or 'an error'} {error}".strip()
        reason = Reason.PROVIDER_REJECTED
        if error in ("invalid_grant", "invalid_request"):
            reason = Reason.AUTH_CODE_INVALID
        refused = PermanentError(self.provider, reason, where)
        refused.oauth_error = error  # type: ignore[attr-defined]  # read by refresh()
        return refused

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
