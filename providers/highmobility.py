"""High Mobility: OAuth 2 code flow with PKCE (S256) at the owner panel; the token request
is a JSON body (``POST /v1/access_tokens``) carrying the app's credentials; the
``redirect_uri`` must match exactly. The refresh token stays in force (not rotated).

The car's data is the Auto API's JSON (``GET /v1/vehicle-data/autoapi-13/{vin}``): one
object per capability (``charging``, ``vehicle_location``, ``diagnostics``), each property
``{"data": ..., "timestamp": "<ISO>"}``, quantities ``{"value": n, "unit": "miles"}``. A
capability whose permission was not granted is absent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from authlib.common.urls import url_decode

from providers.code_flow import CodeFlowAdapter
from providers.data import (
    KM_PER_MILE,
    Battery,
    Charge,
    Location,
    Odometer,
    Part,
    VehicleData,
    as_number,
    fraction_to_percent,
    own_words,
    read_parts,
    timestamp,
)
from providers.names import Provider, Scope
from providers.values import AccountRef, VehicleInfo

__all__ = ["HighMobilityAdapter"]


def _client_secret_json(
    auth: Any, method: str, uri: str, headers: dict[str, str], body: str | bytes
) -> tuple[str, dict[str, str], str]:
    """Authlib client-auth method: the form fields and the app's credentials, as JSON."""
    fields = dict(url_decode(body.decode() if isinstance(body, bytes) else body))
    fields.update(client_id=auth.client_id, client_secret=auth.client_secret)
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields)


# The Auto API's units, as factors to the service's (km, kW, kWh, minutes).
_UNITS: dict[str, dict[str, float]] = {
    "length": {"kilometers": 1.0, "meters": 0.001, "miles": KM_PER_MILE},
    "power": {"kilowatts": 1.0, "watts": 0.001, "megawatts": 1000.0},
    "energy": {"kilowatt_hours": 1.0, "watt_hours": 0.001},
    "duration": {"minutes": 1.0, "seconds": 1 / 60, "hours": 60.0},
}
# `charging.status` values that mean energy is flowing in.
_CHARGING = {"charging", "slow_charging", "fast_charging"}


class _Capability:
    """One capability of an Auto API answer; each property read remembers its time."""

    def __init__(self, body: dict[str, Any], name: str) -> None:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name}: expected an object, got {type(value).__name__}")
        self.name, self.properties = name, value or {}
        self.times: list[datetime] = []

    def data(self, prop: str) -> Any:
        value = self.properties.get(prop)
        if isinstance(value, list):  # a multi-valued property: its first value
            value = value[0] if value else None
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"{self.name}.{prop}: expected an object")
        try:
            when = timestamp(value.get("timestamp"))
        except ValueError:  # its message would carry the provider's text
            raise ValueError(f"{self.name}.{prop}: not a timestamp") from None
        if when is not None:
            self.times.append(when)
        return value.get("data")

    def number(self, prop: str, kind: str | None = None) -> float | None:
        """A plain number, or with `kind` a quantity ``{value, unit}`` in our unit."""
        data = self.data(prop)
        if kind is None or data is None:
            return as_number(data)
        if not isinstance(data, dict):
            raise ValueError(f"{self.name}.{prop}: expected a quantity")
        value = as_number(data.get("value"))
        factor = _UNITS[kind].get(str(data.get("unit")))
        if value is not None and factor is None:
            raise ValueError(f"{self.name}.{prop}: a {kind} in an unknown unit")
        return None if value is None or factor is None else round(value * factor, 3)

    def word(self, prop: str) -> str | None:
        data = self.data(prop)
        if data is not None and not isinstance(data, str):
            raise ValueError(f"{self.name}.{prop}: expected a string")
        return data

    def updated_at(self) -> datetime | None:
        """The newest measurement among the properties read."""
        return max(self.times, default=None)


def _battery(body: dict[str, Any]) -> Battery | None:
    c = _Capability(body, "charging")
    level = fraction_to_percent(c.data("battery_level"))
    range_km = c.number("estimated_range", "length")
    capacity = c.number("battery_capacity", "energy")
    if level is None and range_km is None and capacity is None:
        return None
    return Battery(level, range_km, capacity, c.updated_at())


def _charge(body: dict[str, Any]) -> Charge | None:
    c = _Capability(body, "charging")
    plugged, status = c.word("plugged_in"), c.word("status")
    if plugged not in (None, "plugged_in", "unplugged"):
        raise ValueError("charging.plugged_in: an unknown value")
    charge = Charge(
        is_plugged_in=None if plugged is None else plugged == "plugged_in",
        is_charging=None if status is None else status in _CHARGING,
        charge_rate_kw=c.number("charging_rate", "power"),
        charge_limit_percentage=fraction_to_percent(c.data("charge_limit")),
        time_remaining_minutes=c.number("time_to_complete_charge", "duration"),
    )
    return None if charge == Charge() else replace(charge, updated_at=c.updated_at())


def _location(body: dict[str, Any]) -> Location | None:
    c = _Capability(body, "vehicle_location")
    where = c.data("coordinates")
    if where is None:
        return None
    if not isinstance(where, dict):
        raise ValueError("vehicle_location.coordinates: expected an object")
    latitude, longitude = as_number(where.get("latitude")), as_number(where.get("longitude"))
    if latitude is None or longitude is None:
        raise ValueError("vehicle_location.coordinates: incomplete")
    return Location(latitude, longitude, c.updated_at())


def _odometer(body: dict[str, Any]) -> Odometer | None:
    c = _Capability(body, "diagnostics")
    value = c.number("odometer", "length")
    return None if value is None else Odometer(value, c.updated_at())


_READERS: dict[str, Callable[[dict[str, Any]], Part | None]] = {
    "battery": _battery,
    "charge": _charge,
    "location": _location,
    "odometer": _odometer,
}


def vehicle_data(body: Any, parts: set[str]) -> VehicleData:
    """The `parts` of an Auto API answer, in the service's units. A part in a shape this
    cannot read is None with a line in ``problems`` (which property, what was wrong)."""
    if not isinstance(body, dict):
        return VehicleData(problems=(f"answer: expected an object, got {type(body).__name__}",))
    readers = {name: partial(read, body) for name, read in _READERS.items()}
    return read_parts(parts, readers, problem=own_words)


class HighMobilityAdapter(CodeFlowAdapter):
    provider = Provider.HighMobility
    authorize_url = "https://owner-panel.high-mobility.com/oauth/new"
    token_url = "https://api.high-mobility.com/v1/access_tokens"
    api_url = "https://api.high-mobility.com/v1"
    # The paths it calls, as metrics' endpoint labels (providers.http.MeteredTransport).
    endpoints = (
        "/v1/access_tokens",
        "/v1/vehicles",
        "/v1/vehicles/{id}",
        "/v1/vehicle-data/autoapi-13/{id}",
    )
    token_auth_method = "client_secret_json"
    uses_pkce = True
    # The refresh token stays in force: a refresh whose answer was lost is done again.
    single_use_refresh = False
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

    def read_data(self, account: AccountRef, vehicle_id: str, parts: set[str]) -> VehicleData:
        """One read of the Auto API's vehicle data (`vehicle_id` is the VIN); a 401 is
        lost access (the base's classification)."""
        body = self._api("GET", f"/vehicle-data/autoapi-13/{vehicle_id}", account)
        return vehicle_data(body, parts)
