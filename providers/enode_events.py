"""What Enode tells of a vehicle, read in the service's words: its vehicle object (the
answer to ``GET /vehicles/{id}``, and the ``vehicle`` of a ``user:vehicle:updated`` event)
into :class:`VehicleData`, and its webhook deliveries, verified and parsed into
:class:`ProviderEvent` values. Plain functions: ``EnodeAdapter`` delegates to them.

Enode's ``chargeState``, ``location`` and ``odometer`` are already in percent, km, kWh, kW
and minutes. Webhooks are a JSON array of events signed ``x-enode-signature: sha1=<hex
HMAC-SHA1 of the raw body>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Set
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from providers.data import (
    Battery,
    Charge,
    Location,
    Odometer,
    Part,
    VehicleData,
    as_bool,
    as_number,
    own_words,
    read_parts,
    timestamp,
)
from providers.webhooks import Happening, ProviderEvent, hmac_hex

__all__ = ["ALL_PARTS", "parse_webhook", "vehicle_data", "verify_webhook"]


# -- Enode's vehicle object into the service's data ------------------------------------------


def _section(vehicle: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = vehicle.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected an object, got {type(value).__name__}")
    return value


def _when(section: dict[str, Any]) -> datetime | None:
    try:
        return timestamp(section.get("lastUpdated"))
    except ValueError:  # its message would carry the provider's text
        raise ValueError("lastUpdated: not a timestamp") from None


def _battery(vehicle: dict[str, Any]) -> Battery | None:
    state = _section(vehicle, "chargeState") or {}
    level, range_km, capacity = (
        as_number(state.get(k)) for k in ("batteryLevel", "range", "batteryCapacity")
    )
    if level is None and range_km is None and capacity is None:
        return None  # no charge data (not granted, or the vendor gives none)
    return Battery(level, range_km, capacity, _when(state))


def _charge(vehicle: dict[str, Any]) -> Charge | None:
    state = _section(vehicle, "chargeState") or {}
    charge = Charge(
        is_plugged_in=as_bool(state.get("isPluggedIn")),
        is_charging=as_bool(state.get("isCharging")),
        charge_rate_kw=as_number(state.get("chargeRate")),
        charge_limit_percentage=as_number(state.get("chargeLimit")),
        time_remaining_minutes=as_number(state.get("chargeTimeRemaining")),
    )
    return None if charge == Charge() else replace(charge, updated_at=_when(state))


def _location(vehicle: dict[str, Any]) -> Location | None:
    where = _section(vehicle, "location") or {}
    latitude, longitude = as_number(where.get("latitude")), as_number(where.get("longitude"))
    if latitude is None and longitude is None:
        return None  # Enode's answer without the location scope
    if latitude is None or longitude is None:
        raise ValueError("only one of latitude and longitude")
    return Location(latitude, longitude, _when(where))


def _odometer(vehicle: dict[str, Any]) -> Odometer | None:
    odometer = _section(vehicle, "odometer") or {}
    distance = as_number(odometer.get("distance"))
    return None if distance is None else Odometer(distance, _when(odometer))


_READERS: dict[str, Callable[[dict[str, Any]], Part | None]] = {
    "battery": _battery,
    "charge": _charge,
    "location": _location,
    "odometer": _odometer,
}
ALL_PARTS = frozenset(_READERS)


def vehicle_data(vehicle: Any, parts: Set[str]) -> VehicleData:
    """The `parts` of Enode's vehicle object. A part in a shape this cannot read is None
    with a line in ``problems`` (which field, what was wrong; no values)."""
    if not isinstance(vehicle, dict):
        return VehicleData(problems=(f"vehicle: expected an object, got {type(vehicle).__name__}",))
    readers = {name: partial(read, vehicle) for name, read in _READERS.items()}
    return read_parts(parts, readers, problem=own_words)


# -- webhooks ------------------------------------------------------------------------------------


def verify_webhook(secret: str, raw: bytes, header: str | None) -> bool:
    """``sha1=<hex HMAC-SHA1 of the raw body>``, compared in constant time. Bytes are
    compared, so that a non-ASCII header is a mismatch, not a TypeError."""
    if not secret or not header:
        return False
    scheme, sep, claimed = header.strip().partition("=")
    if not sep or scheme.lower() != "sha1":
        return False
    expected = hmac_hex(secret, raw, "sha1").encode()
    return hmac.compare_digest(expected, claimed.strip().lower().encode("utf-8", "replace"))


def parse_webhook(body: Any) -> list[ProviderEvent]:
    """Enode's events, one each. Whether a discovered vehicle is the connected one or a
    second car is the workflow's to decide (it knows which vehicle it connected)."""
    if not isinstance(body, list):
        return [ProviderEvent(Happening.nothing, detail="not a list of events")]
    return [_event(item) for item in body]


def _event(item: Any) -> ProviderEvent:
    if not isinstance(item, dict):
        return ProviderEvent(Happening.nothing, detail="an event that is not an object")
    kind = item.get("event")
    vehicle = item.get("vehicle")
    user_id = _id_of(item.get("user"))
    if user_id is None and isinstance(vehicle, dict) and isinstance(vehicle.get("userId"), str):
        user_id = vehicle["userId"]
    vehicle_id = _id_of(vehicle)
    known = ("user:vehicle:discovered", "user:vehicle:deleted", "user:vehicle:updated")
    if kind not in known:
        return ProviderEvent(Happening.nothing, user_id, vehicle_id, detail=f"{kind}"[:80])
    if user_id is None or vehicle_id is None:
        return ProviderEvent(Happening.nothing, user_id, vehicle_id, detail=f"{kind}: no ids")
    if kind == "user:vehicle:discovered":
        return ProviderEvent(Happening.vehicle_added, user_id, vehicle_id, detail=kind)
    if kind == "user:vehicle:deleted":
        return ProviderEvent(Happening.access_lost, user_id, vehicle_id, detail=kind)
    data = vehicle_data(vehicle, ALL_PARTS)
    return ProviderEvent(Happening.data, user_id, vehicle_id, data, detail=kind)


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("id"), str | int):
        return str(value["id"])
    return None
