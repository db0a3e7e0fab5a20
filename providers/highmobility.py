"""High Mobility: OAuth 2 code flow with PKCE (S256) at the owner panel; the token request
is a JSON body (``POST /v1/access_tokens``) carrying the app's credentials; the
``redirect_uri`` must match exactly."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from authlib.common.urls import url_decode

from providers.base import AccountRef, CodeFlowAdapter, VehicleInfo
from providers.names import Provider, Scope

__all__ = ["HighMobilityAdapter"]


def _client_secret_json(
    auth: Any, method: str, uri: str, headers: dict[str, str], body: str | bytes
) -> tuple[str, dict[str, str], str]:
    """Authlib client-auth method: the form fields and the app's credentials, as JSON."""
    fields = dict(url_decode(body.decode() if isinstance(body, bytes) else body))
    fields.update(client_id=auth.client_id, client_secret=auth.client_secret)
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields)


class HighMobilityAdapter(CodeFlowAdapter):
    provider = Provider.HighMobility
    authorize_url = "https://owner-panel.high-mobility.com/oauth/new"
    token_url = "https://api.high-mobility.com/v1/access_tokens"
    api_url = "https://api.high-mobility.com/v1"
    token_auth_method = "client_secret_json"
    uses_pkce = True
    validation_scopes = ("vehicle:identification",)
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {
        Scope.location: ("vehicle:location",),
        Scope.charge_state: ("vehicle:charging",),
        Scope.odometer: ("vehicle:diagnostics",),
    }

    def register_auth_methods(self, client: Any) -> None:
        client.register_client_auth_method(("client_secret_json", _client_secret_json))

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        body = self._api("GET", "/vehicles", account)
        return [str(v["vin"]) for v in body.get("vehicles", [])]

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        return self.inspect(account, vehicle_id)[0]

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        return self.inspect(account, vehicle_id)[1]

    def inspect(self, account: AccountRef, vehicle_id: str) -> tuple[VehicleInfo, set[str]]:
        v = self._api("GET", f"/vehicles/{vehicle_id}", account)  # one call answers both
        info = VehicleInfo(
            id=vehicle_id,
            make=str(v.get("brand", "")),
            model=v.get("model"),
            year=v.get("year"),
            vin=v.get("vin"),
        )
        return info, {str(s) for s in v.get("scopes", [])}
