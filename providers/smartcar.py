"""Smartcar: Connect (OAuth 2 code flow) and the v2.0 vehicle API.

Errors carry ``type``, ``code`` and ``resolution.type``; ``RETRY_LATER`` is transient,
``REAUTHENTICATE`` means the access is gone.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from providers.base import AccountRef, CodeFlowAdapter, VehicleInfo
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import concurrently
from providers.names import Provider, Scope

__all__ = ["SmartcarAdapter"]

# The `error` of Connect's redirect back, by what it means for the connection.
_CALLBACK_ERRORS = {
    "access_denied": Reason.AUTHORIZATION_DENIED,
    "vehicle_incompatible": Reason.CONNECT_PROVIDER_NOT_SUPPORTED,
    "no_vehicles": Reason.CONNECT_NO_VEHICLE,
}


class SmartcarAdapter(CodeFlowAdapter):
    provider = Provider.Smartcar
    authorize_url = "https://connect.smartcar.com/oauth/authorize"
    token_url = "https://auth.smartcar.com/oauth/token"
    api_url = "https://api.smartcar.com/v2.0"
    validation_scopes = ("read_vehicle_info", "read_vin")
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {
        Scope.location: ("read_location",),
        Scope.charge_state: ("read_battery", "read_charge"),
        Scope.odometer: ("read_odometer",),
    }

    def authorize_params(self) -> dict[str, str]:
        # One car per connection: the user picks a single vehicle on Smartcar's page.
        mode = "test" if self.credentials.base_url else "live"
        return {"mode": mode, "single_select": "true"}

    @classmethod
    def callback_error(cls, error: str) -> Reason:
        return _CALLBACK_ERRORS.get(error, Reason.AUTHORIZATION_DENIED)

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        body = self._api("GET", "/vehicles", account)
        return [str(v) for v in body.get("vehicles", [])]

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        return self.inspect(account, vehicle_id)[0]

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        body = self._api("GET", f"/vehicles/{vehicle_id}/permissions", account)
        return {str(p) for p in body.get("permissions", [])}

    def inspect(self, account: AccountRef, vehicle_id: str) -> tuple[VehicleInfo, set[str]]:
        """The vehicle's info, its VIN and the permissions: three reads at once."""
        info, vin, permissions = concurrently(
            lambda: self._api("GET", f"/vehicles/{vehicle_id}", account),
            lambda: self._api("GET", f"/vehicles/{vehicle_id}/vin", account),
            lambda: self._api("GET", f"/vehicles/{vehicle_id}/permissions", account),
        )
        vehicle = VehicleInfo(
            id=vehicle_id,
            make=str(info.get("make", "")),
            model=info.get("model"),
            year=info.get("year"),
            vin=vin.get("vin"),
        )
        return vehicle, {str(p) for p in permissions.get("permissions", [])}

    def revoke(self, account: AccountRef, vehicle_id: str | None) -> bool:
        if vehicle_id:  # the app's access to this vehicle ends
            self._api("DELETE", f"/vehicles/{vehicle_id}/application", account)
        return True

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        try:
            body = response.json()
        except ValueError:
            body = {}
        resolution = (body.get("resolution") or {}).get("type")
        detail = (
            f"{what} answered {response.status_code} {body.get('type', '')}:{body.get('code', '')}"
        )
        if (
            resolution == "RETRY_LATER"
            or response.status_code in (429,)
            or response.status_code >= 500
        ):
            return RetryableError(self.provider, detail, parse_retry_after(response))
        if body.get("type") == "PERMISSION":  # comes with REAUTHENTICATE: check it first
            return PermanentError(self.provider, Reason.SCOPE_NOT_GRANTED, detail)
        if resolution == "REAUTHENTICATE" or response.status_code == 401:
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        if body.get("type") == "COMPATIBILITY":
            return PermanentError(self.provider, Reason.CONNECT_PROVIDER_NOT_SUPPORTED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)
