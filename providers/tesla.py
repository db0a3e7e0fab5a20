"""Tesla Fleet API: OAuth 2 code flow at auth.tesla.com (``state`` required), the token
exchange names the regional API as ``audience``, the access token is a JWT whose ``scp``
claim lists what the user granted, refresh tokens are single use; ``408`` means the car
is asleep (try later: the service never wakes a car up to read it). The car's data is one
``vehicle_data`` call naming the sections it needs; distances are in miles."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import httpx
import jwt

from providers.code_flow import CodeFlowAdapter
from providers.data import (
    Battery,
    Charge,
    Location,
    Odometer,
    Part,
    VehicleData,
    as_number,
    miles_to_km,
    read_parts,
    timestamp,
)
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.names import Provider, Scope
from providers.values import AccountRef, VehicleInfo

__all__ = ["TeslaAdapter"]

# A sleeping car is not asked again at once (nor woken up): the step waits at least this.
_ASLEEP_RETRY_AFTER = 30.0
# The sections of `vehicle_data` each part needs (`location_data` adds the coordinates
# to drive_state, where the user granted `vehicle_location`).
_ENDPOINTS = {
    "battery": ("charge_state",),
    "charge": ("charge_state",),
    "location": ("drive_state", "location_data"),
    "odometer": ("vehicle_state",),
}


def _section(response: dict[str, Any], name: str) -> dict[str, Any]:
    section = response[name]
    if not isinstance(section, dict):
        raise TypeError(f"{name} is a {type(section).__name__}")
    return section


def _battery(r: dict[str, Any]) -> Battery:
    cs = _section(r, "charge_state")
    return Battery(
        percentage=as_number(cs["battery_level"]),
        range_km=miles_to_km(cs["battery_range"]),
        capacity_kwh=None,  # Tesla does not say
        updated_at=timestamp(cs.get("timestamp")),
    )


def _charge(r: dict[str, Any]) -> Charge:
    cs = _section(r, "charge_state")
    state = cs["charging_state"]  # Charging, Complete, Stopped, Starting, NoPower, Disconnected
    if state is not None and not isinstance(state, str):
        raise TypeError(f"charging_state is a {type(state).__name__}")
    return Charge(
        is_plugged_in=None if state is None else state != "Disconnected",
        is_charging=None if state is None else state == "Charging",
        charge_rate_kw=as_number(cs.get("charger_power")),
        charge_limit_percentage=as_number(cs.get("charge_limit_soc")),
        time_remaining_minutes=as_number(cs.get("minutes_to_full_charge")),
        updated_at=timestamp(cs.get("timestamp")),
    )


def _location(r: dict[str, Any]) -> Location | None:
    ds = _section(r, "drive_state")
    latitude, longitude = as_number(ds.get("latitude")), as_number(ds.get("longitude"))
    if latitude is None or longitude is None:
        return None  # not granted (`vehicle_location`): Tesla leaves the coordinates out
    return Location(latitude, longitude, timestamp(ds.get("timestamp")))


def _odometer(r: dict[str, Any]) -> Odometer:
    vs = _section(r, "vehicle_state")
    value = miles_to_km(vs["odometer"])
    if value is None:
        raise ValueError("no odometer")
    return Odometer(value, timestamp(vs.get("timestamp")))


_PARTS: dict[str, Callable[[dict[str, Any]], Part | None]] = {
    "battery": _battery,
    "charge": _charge,
    "location": _location,
    "odometer": _odometer,
}


def _read(read: Callable[[dict[str, Any]], Part | None], response: Any) -> Part | None:
    if not isinstance(response, dict):
        raise TypeError("the answer has no response object")
    return read(response)


class TeslaAdapter(CodeFlowAdapter):
    provider = Provider.Tesla
    authorize_url = "https://auth.tesla.com/oauth2/v3/authorize"
    token_url = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
    api_url = "https://fleet-api.prd.na.vn.cloud.tesla.com"  # North America; set per client
    # The paths it calls, as metrics' endpoint labels (providers.http.MeteredTransport).
    endpoints = (
        "/oauth2/v3/token",
        "/api/1/vehicles",
        "/api/1/vehicles/{id}",
        "/api/1/vehicles/{id}/vehicle_data",
    )
    token_auth_method = "client_secret_post"
    single_use_refresh = True
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

    def read_data(self, account: AccountRef, vehicle_id: str, parts: set[str]) -> VehicleData:
        """One ``vehicle_data`` call for the sections the `parts` need. A car asleep is a
        RetryableError (408): it is never woken up for this."""
        wanted = [part for part in _PARTS if part in parts]
        if not wanted:
            return VehicleData()
        endpoints = list(dict.fromkeys(e for part in wanted for e in _ENDPOINTS[part]))
        path = f"/api/1/vehicles/{vehicle_id}/vehicle_data"
        url = self._endpoint(self.api_url).rstrip("/") + path
        token = account.require_tokens().access_token
        answer = self._send(
            "GET",
            url,
            f"GET {path}",
            params={"endpoints": ";".join(endpoints)},
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            response = answer.json()["response"]
        except (ValueError, KeyError, TypeError):
            response = None
        readers = {part: partial(_read, _PARTS[part], response) for part in wanted}
        return read_parts(
            wanted,
            readers,
            absent="not in the answer (scope not granted)",
        )

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        status = response.status_code
        detail = f"{what} answered {status}"
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response)
            if retry_after is None and response.headers.get("ratelimit-reset"):
                retry_after = float(response.headers["ratelimit-reset"])
            if status == 408:  # asleep or offline: it answers once it wakes by itself
                detail += ": the car is asleep or offline"
                retry_after = _ASLEEP_RETRY_AFTER if retry_after is None else retry_after
            return RetryableError(self.provider, detail, retry_after)
        if status == 401:
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        if status == 403:  # "Unauthorized missing scopes"
            return PermanentError(self.provider, Reason.SCOPE_NOT_GRANTED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)
