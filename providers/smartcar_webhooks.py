"""What Smartcar's webhooks tell, read in the service's words: the signature
(``SC-Signature: <hex HMAC-SHA256 of the raw body>``), the VERIFY challenge, the
delivery's key, and the events: VEHICLE_ERROR (lost access or not), VEHICLE_STATE (its
signals read into :class:`VehicleData`). Plain functions: ``SmartcarAdapter`` delegates
to them. Also the few readings of Smartcar's shapes that its batch answers share
(``providers.smartcar``): an error's resolution, coordinates, a required value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from providers.data import (
    PART_TYPES,
    SHAPE_ERRORS,
    VehicleData,
    as_bool,
    as_number,
    miles_to_km,
    shape_problem,
    timestamp,
)
from providers.webhooks import Happening, ProviderEvent, hmac_hex

__all__ = [
    "REAUTHENTICATE",
    "Fields",
    "answer_challenge",
    "coordinates",
    "delivery_key",
    "parse_webhook",
    "required",
    "resolution",
    "signals_data",
    "verify_webhook",
    "webhook_challenge",
]

# Error types (in an answer or a VEHICLE_ERROR webhook) that mean the access is gone.
# (Not PERMISSION: one permission missing costs its part of the data, as in a read,
# not the whole connection.)
_LOST_ACCESS = {"AUTHENTICATION", "CONNECTED_SERVICES_ACCOUNT"}
REAUTHENTICATE = "REAUTHENTICATE"

# What a reader makes of a body: the fields of its part.
Fields = Callable[..., dict[str, Any]]


# -- Smartcar's shapes, in webhooks and batch answers alike ----------------------------------


def resolution(body: dict[str, Any]) -> Any:
    """The ``resolution.type`` of an error (``RETRY_LATER``, ``REAUTHENTICATE``…)."""
    found = body.get("resolution")
    return found.get("type") if isinstance(found, dict) else None


def required(value: float | None) -> float:
    if value is None:
        raise ValueError("no value")
    return value


def coordinates(body: dict[str, Any], *_: Any) -> dict[str, float]:
    return {
        "latitude": required(as_number(body["latitude"])),
        "longitude": required(as_number(body["longitude"])),
    }


# -- deliveries ----------------------------------------------------------------------------------


def verify_webhook(secret: str, raw: bytes, header: str | None) -> bool:
    claimed = (header or "").strip().lower()
    if not claimed or not claimed.isascii():  # compare_digest refuses non-ASCII text
        return False
    return hmac.compare_digest(hmac_hex(secret, raw, "sha256"), claimed)


def webhook_challenge(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("eventType") != "VERIFY":
        return None
    data = body.get("data")
    challenge = data.get("challenge") if isinstance(data, dict) else None
    return challenge if isinstance(challenge, str) else None


def answer_challenge(secret: str, challenge: str) -> str:
    return hmac_hex(secret, challenge.encode(), "sha256")


def delivery_key(raw: bytes, body: Any) -> str:
    event_id = body.get("eventId") if isinstance(body, dict) else None
    if isinstance(event_id, str) and 0 < len(event_id) <= 100:
        return event_id
    return hashlib.sha256(raw).hexdigest()


def parse_webhook(body: Any) -> list[ProviderEvent]:
    if not isinstance(body, dict):
        return [ProviderEvent(Happening.nothing, detail="not a JSON object")]
    kind = body.get("eventType")
    data = _dict(body.get("data"))
    vehicle_id = _dict(data.get("vehicle")).get("id")
    vehicle_id = vehicle_id if isinstance(vehicle_id, str) else None
    if kind == "VEHICLE_ERROR" and vehicle_id and _lost_access(data.get("errors")):
        return [ProviderEvent(Happening.access_lost, vehicle_id=vehicle_id, detail=kind)]
    if kind == "VEHICLE_STATE" and vehicle_id:
        read = signals_data(data.get("signals"))
        if any(getattr(read, part) for part in PART_TYPES):
            return [ProviderEvent(Happening.data, vehicle_id=vehicle_id, data=read)]
    return [ProviderEvent(Happening.nothing, vehicle_id=vehicle_id, detail=f"{kind!s:.40}")]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _lost_access(errors: Any) -> bool:
    """Whether a VEHICLE_ERROR's errors say the access is gone (a RESOLVED one does not)."""
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(e, dict)
        and e.get("state") != "RESOLVED"
        and e.get("type") != "PERMISSION"  # comes with REAUTHENTICATE: one part only
        and (e.get("type") in _LOST_ACCESS or resolution(e) == REAUTHENTICATE)
        for e in errors
    )


# -- VEHICLE_STATE signals: code → (part, the fields its body gives) ------------------------


def _distance_of(body: dict[str, Any]) -> float | None:
    if str(body.get("unit", "")).lower() in ("miles", "mi"):
        return miles_to_km(body["value"])
    return as_number(body["value"])


def _global_limit(body: dict[str, Any]) -> float | None:
    for limit in body["values"]:
        if str(limit.get("type", "")).lower() == "global":
            return as_number(limit["limit"])
    return None


def _value(name: str, read: Callable[[Any], Any]) -> Fields:
    return lambda body: {name: read(body["value"])}


_SIGNALS: dict[str, tuple[str, Fields]] = {
    "tractionbattery-stateofcharge": ("battery", _value("percentage", as_number)),
    "tractionbattery-range": ("battery", lambda b: {"range_km": _distance_of(b)}),
    "tractionbattery-nominalcapacity": (
        "battery",
        lambda b: {"capacity_kwh": as_number(b["capacity"])},
    ),
    "charge-ischarging": ("charge", _value("is_charging", as_bool)),
    "charge-ischargingcableconnected": ("charge", _value("is_plugged_in", as_bool)),
    "charge-chargelimits": ("charge", lambda b: {"charge_limit_percentage": _global_limit(b)}),
    "location-preciselocation": ("location", coordinates),
    "odometer-traveleddistance": ("odometer", lambda b: {"value_km": required(_distance_of(b))}),
}


def signals_data(signals: Any) -> VehicleData:
    """The parts that a VEHICLE_STATE's signals carry (the others None). A signal in error
    or in an odd shape is left out, with a line in ``problems``."""
    fields: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for signal in signals if isinstance(signals, list) else []:
        code = signal.get("code") if isinstance(signal, dict) else None
        if code not in _SIGNALS:
            continue
        part, read = _SIGNALS[code]
        meta = signal.get("meta")
        try:
            values = read(signal["body"])
            when = timestamp(meta.get("oemUpdatedAt") or meta.get("retrievedAt")) if meta else None
        except SHAPE_ERRORS as exc:
            problems.append(shape_problem(f"signal {code}", exc))
            continue
        got = fields.setdefault(part, {})
        got.update(values)
        if when and (got.get("updated_at") is None or when < got["updated_at"]):
            got["updated_at"] = when  # the oldest measurement in the part
    parts = {part: PART_TYPES[part](**values) for part, values in fields.items()}
    return VehicleData(**parts, problems=tuple(problems))
