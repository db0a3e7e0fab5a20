"""Tesla Fleet API: OAuth 2 code flow at auth.tesla.com (``state`` required), the token
exchange names the regional API as ``audience``, the access token is a JWT whose ``scp``
claim lists what the user granted; ``408`` means the car is asleep (try later)."""

from __future__ import annotations

from typing import ClassVar

import httpx
import jwt

from providers.base import AccountRef, CodeFlowAdapter, VehicleInfo
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.names import Provider, Scope

__all__ = ["TeslaAdapter"]


class TeslaAdapter(CodeFlowAdapter):
    provider = Provider.Tesla
    authorize_url = "https://auth.tesla.com/oauth2/v3/authorize"
    token_url = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
    api_url = "https://fleet-api.prd.na.vn.cloud.tesla.com"  # North America; set per client
    token_auth_method = "client_secret_post"
    validation_scopes = ("openid", "offline_access", "vehicle_device_data")
    scope_map: ClassVar[dict[Scope, tuple[str, ...]]] = {
        Scope.location: ("vehicle_location",),
        Scope.charge_state: ("vehicle_device_data",),
        Scope.odometer: ("vehicle_device_data",),
    }

    def token_params(self) -> dict[str, str]:
        # Tokens are minted for one regional Fleet API: it must be named.
        return {"audience": self._endpoint(self.api_url).rstrip("/")}

    def list_vehicle_ids(self, account: AccountRef) -> list[str]:
        body = self._api("GET", "/api/1/vehicles", account)
        return [str(v["id"]) for v in body.get("response") or []]

    def read_vehicle(self, account: AccountRef, vehicle_id: str) -> VehicleInfo:
        v = self._api("GET", f"/api/1/vehicles/{vehicle_id}", account).get("response") or {}
        return VehicleInfo(id=vehicle_id, make="Tesla", model=None, year=None, vin=v.get("vin"))

    def granted_scopes(self, account: AccountRef, vehicle_id: str) -> set[str]:
        token = account.require_tokens().access_token
        try:
            # Read, not verified: the token came straight from Tesla's token endpoint.
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise PermanentError(
                self.provider, Reason.PROVIDER_REJECTED, "token is not a JWT"
            ) from exc
        scp = claims.get("scp") or []
        return {str(s) for s in (scp.split() if isinstance(scp, str) else scp)}

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        status = response.status_code
        detail = f"{what} answered {status}"
        if status in (408, 429) or status >= 500:  # 408: the car is asleep
            retry_after = parse_retry_after(response)
            if retry_after is None and response.headers.get("ratelimit-reset"):
                retry_after = float(response.headers["ratelimit-reset"])
            return RetryableError(self.provider, detail, retry_after)
        if status == 401:
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        if status == 403:  # "Unauthorized missing scopes"
            return PermanentError(self.provider, Reason.SCOPE_NOT_GRANTED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)
