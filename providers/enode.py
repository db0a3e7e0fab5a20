"""Enode: one Enode user per connected vehicle, linked through Enode Link.

The service authenticates as an app (client credentials, Basic auth; the token is cached
until it expires, shared by every worker through an :class:`AppTokenCache`), creates a
link session for the user (``POST /users/{userId}/link``: single use, 24 h), and, when the
user is sent back (no code: the service's own ``state`` rides in the ``redirectUri``),
reads the user's vehicles. A link grants the whole maker account. Errors are
problem-details JSON (``type``, ``title``, ``detail``).

The car's data is Enode's vehicle object (``GET /vehicles/{id}``, and the ``vehicle`` of a
``user:vehicle:updated`` webhook); reading it, and Enode's webhooks, is
``providers.enode_events``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

import providers.enode_events as enode_events
from providers.base import Adapter
from providers.code_flow import OAuth2Client  # Authlib's client, imported there once
from providers.data import VehicleData
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import DeadlineExceeded, deadline
from providers.names import Provider, Scope
from providers.values import AccountRef, VehicleInfo
from providers.webhooks import ProviderEvent

__all__ = ["EnodeAdapter"]

API_VERSION = "2024-10-01"


class _NotFound(PermanentError):
    """A 404 (still PROVIDER_REJECTED to every caller); a data read knows it means the
    car is gone from the user's account."""


class EnodeAdapter(Adapter):
    provider = Provider.Enode
    flow = "link"
    # The link URL comes from POST /users/{userId}/link (a job makes it); the user comes
    # back with no code; the service reads with its app token, shared, never refreshed.
    link_made_at_provider = True
    returns_code = False
    refreshes = False
    webhook_header = "x-enode-signature"
    token_url = "https://oauth.production.enode.io/oauth2/token"
    api_url = "https://enode-api.production.enode.io"
    # The paths it calls, as metrics' endpoint labels (providers.http.MeteredTransport).
    endpoints = (
        "/oauth2/token",
        "/users/{id}",
        "/users/{id}/link",
        "/users/{id}/vehicles",
        "/vehicles/{id}",
    )
    validation_scopes = ("vehicle:read:data",)
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {
        Scope.location: ("vehicle:read:location",),
        Scope.charge_state: ("vehicle:read:data",),
        Scope.odometer: ("vehicle:read:data",),
    }

    def start_consent(
        self,
        *,
        state: str,
        callback_url: str,
        scopes: Sequence[str],
        user_id: str,
        code_verifier: str | None = None,
    ) -> str:
        """A link session whose redirect back carries our ``state`` (Enode sends no code
        and no state of its own)."""
        sep = "&" if "?" in callback_url else "?"
        redirect_uri = f"{callback_url}{sep}{urlencode({'state': state})}"
        return self.create_link(user_id=user_id, redirect_uri=redirect_uri, scopes=scopes)

    def create_link(self, *, user_id: str, redirect_uri: str, scopes: Sequence[str]) -> str:
        """A link session for the user; returns the URL to send them to."""
        body = self._call(
            "POST",
            f"/users/{user_id}/link",
            json={
                "vendorType": "vehicle",
                "scopes": self.provider_scopes(scopes),
                "redirectUri": redirect_uri,
                "language": "en-US",
            },
        )
        return str(body["linkUrl"])

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        body = self._call("GET", f"/users/{self._user(account)}/vehicles")
        return [str(v["id"]) for v in body.get("data", [])]

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        return self.inspect(account, vehicle_id)[0]

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        return self.inspect(account, vehicle_id)[1]

    def inspect(self, account: AccountRef, vehicle_id: str) -> tuple[VehicleInfo, set[str]]:
        body = self._call("GET", f"/vehicles/{vehicle_id}")  # one call answers both
        info = body.get("information") or {}
        vehicle = VehicleInfo(
            id=vehicle_id,
            make=str(info.get("brand", "")),
            model=info.get("model"),
            year=info.get("year"),
            vin=info.get("vin"),
        )
        return vehicle, {str(s) for s in body.get("scopes", [])}

    def read_data(self, account: AccountRef, vehicle_id: str, parts: set[str]) -> VehicleData:
        """One read of Enode's vehicle object. A vehicle Enode no longer knows (the car
        left the user's maker account, or the Enode user is gone) is lost access."""
        try:
            body = self._call("GET", f"/vehicles/{vehicle_id}")
        except _NotFound as exc:
            raise PermanentError(
                self.provider, Reason.ACCESS_REVOKED, "the vehicle is gone from the account"
            ) from exc
        return enode_events.vehicle_data(body, parts)

    def revoke(self, account: AccountRef, vehicle_id: str | None) -> bool:
        # One Enode user per connected vehicle: deleting it ends the link.
        self._call("DELETE", f"/users/{self._user(account)}")
        return True

    # -- webhooks (read in providers.enode_events) -----------------------------------------

    @classmethod
    def verify_webhook(cls, secret: str, raw: bytes, header: str | None) -> bool:
        return enode_events.verify_webhook(secret, raw, header)

    @classmethod
    def is_delivery(cls, body: Any) -> bool:
        """Enode sends a batch: a list of event objects, never empty."""
        return isinstance(body, list) and bool(body) and all(isinstance(e, dict) for e in body)

    @classmethod
    def parse_webhook(cls, body: Any) -> list[ProviderEvent]:
        return enode_events.parse_webhook(body)

    # -- the app token and calls -----------------------------------------------------------

    @staticmethod
    def _user(account: AccountRef) -> str:
        if not account.user_id:
            raise ValueError("Enode reads an account by its Enode user id")
        return account.user_id

    def _cache_key(self) -> str:
        raw = f"{self.credentials.client_id}|{self.credentials.base_url or ''}"
        return "enode:" + hashlib.sha256(raw.encode()).hexdigest()[:32]

    def _app_token(self, *, fresh: bool = False) -> str:
        cache, key = self._token_cache, self._cache_key()
        if cache is not None and not fresh:
            hit = cache.get(key)
            if hit is not None and hit[1] > datetime.now(UTC) + timedelta(seconds=30):
                return hit[0]
        token_url = self._endpoint(self.token_url)
        # Over the pooled transport, and not closed: closing would close the pool.
        client = OAuth2Client(
            client_id=self.credentials.client_id,
            client_secret=self.credentials.client_secret,
            token_endpoint_auth_method="client_secret_basic",
            timeout=self._timeout,
            transport=self._transport_for(token_url),
        )
        client.register_compliance_hook("access_token_response", self._check_token)
        try:
            with deadline(self._timeout):
                token = client.fetch_token(token_url, grant_type="client_credentials")
        except (httpx.TransportError, DeadlineExceeded) as exc:
            raise RetryableError(self.provider, f"token request: {type(exc).__name__}") from exc
        expires_at = datetime.now(UTC) + timedelta(seconds=float(token.get("expires_in", 3600)))
        if cache is not None:
            cache.put(key, str(token["access_token"]), expires_at)
        return str(token["access_token"])

    def _check_token(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        error = self._classify(response, "token request")
        if isinstance(error, PermanentError):  # the app's own credentials are refused
            raise PermanentError(self.provider, Reason.PROVIDER_REJECTED, error.detail)
        raise error

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        url = self._endpoint(self.api_url).rstrip("/") + path
        for fresh in (False, True):
            headers = {
                "Authorization": f"Bearer {self._app_token(fresh=fresh)}",
                "Enode-Version": API_VERSION,
            }
            try:
                response = self._send(method, url, f"{method} {path}", headers=headers, json=json)
            except PermanentError as exc:
                # a cached app token the provider no longer takes: fetch one, once
                if exc.reason is not Reason.ACCESS_REVOKED or fresh:
                    raise
                continue
            return response.json() if response.content else None
        raise AssertionError("unreachable")  # pragma: no cover

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        status = response.status_code
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        title = problem.get("title", "") if isinstance(problem, dict) else ""
        detail = f"{what} answered {status} {title}".strip()
        if status == 429 or status >= 500:
            return RetryableError(self.provider, detail, parse_retry_after(response))
        if status == 401:
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        if status == 403:
            return PermanentError(self.provider, Reason.SCOPE_NOT_GRANTED, detail)
        if status == 404:
            return _NotFound(self.provider, Reason.PROVIDER_REJECTED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)
