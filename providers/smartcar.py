"""Smartcar: Connect (OAuth 2 code flow), the v2.0 vehicle API and its webhooks.

Errors carry ``type``, ``code`` and ``resolution.type``; ``RETRY_LATER`` is transient,
``REAUTHENTICATE`` means the access is gone. The car's data is read with one batch call
whose sub-responses succeed or fail each on its own (a withheld permission fails its path
only). Webhooks are signed ``SC-Signature: <hex HMAC-SHA256 of the raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from providers.base import AccountRef, CodeFlowAdapter, VehicleInfo
from providers.data import (
    Battery,
    Charge,
    Location,
    Odometer,
    VehicleData,
    as_bool,
    as_number,
    fraction_to_percent,
    miles_to_km,
    timestamp,
)
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import concurrently
from providers.names import Provider, Scope
from providers.webhooks import Happening, ProviderEvent, hmac_hex

__all__ = ["SmartcarAdapter"]

# The `error` of Connect's redirect back, by what it means for the connection.
_CALLBACK_ERRORS = {
    "access_denied": Reason.AUTHORIZATION_DENIED,
    "vehicle_incompatible": Reason.CONNECT_PROVIDER_NOT_SUPPORTED,
    "no_vehicles": Reason.CONNECT_NO_VEHICLE,
}
# Error types (in an answer or a VEHICLE_ERROR webhook) that mean the access is gone.
_LOST_ACCESS = {"AUTHENTICATION", "PERMISSION", "CONNECTED_SERVICES_ACCOUNT"}
_REAUTHENTICATE = "REAUTHENTICATE"
_RETRY_LATER = "RETRY_LATER"

_Fields = Callable[..., dict[str, Any]]


def _resolution(body: dict[str, Any]) -> Any:
    resolution = body.get("resolution")
    return resolution.get("type") if isinstance(resolution, dict) else None


def _required(value: float | None) -> float:
    if value is None:
        raise ValueError("no value")
    return value


def _coordinates(body: dict[str, Any], *_: Any) -> dict[str, float]:
    return {
        "latitude": _required(as_number(body["latitude"])),
        "longitude": _required(as_number(body["longitude"])),
    }


def _charging(state: Any) -> bool | None:
    if state is not None and not isinstance(state, str):
        raise TypeError(f"state is a {type(state).__name__}")
    return None if state is None else state == "CHARGING"


# Each batch path: the part it fills and its fields, from (body, distance in km). A part
# is made when its own path (the first of the part here) answered.
_PATHS: dict[str, tuple[str, _Fields]] = {
    "/battery": (
        "battery",
        lambda b, km: {
            "percentage": fraction_to_percent(b["percentRemaining"]),
            "range_km": km(b["range"]),
        },
    ),
    "/battery/nominal_capacity": (
        "battery",
        lambda b, km: {"capacity_kwh": as_number(b["capacity"]["nominal"])},
    ),
    "/charge": (
        "charge",
        lambda b, km: {
            "is_plugged_in": as_bool(b["isPluggedIn"]),
            "is_charging": _charging(b["state"]),
        },
    ),
    "/charge/limit": (
        "charge",
        lambda b, km: {"charge_limit_percentage": fraction_to_percent(b["limit"])},
    ),
    "/location": ("location", _coordinates),
    "/odometer": ("odometer", lambda b, km: {"value_km": _required(km(b["distance"]))}),
}
_OWN_PATH = {
    "battery": "/battery",
    "charge": "/charge",
    "location": "/location",
    "odometer": "/odometer",
}
_KINDS: dict[str, type] = {
    "battery": Battery,
    "charge": Charge,
    "location": Location,
    "odometer": Odometer,
}


def _batch_data(body: Any, wanted: list[str]) -> tuple[VehicleData, bool]:
    """The parts of a batch answer, and whether a path asked to be tried later. A path
    that failed or answered an odd shape leaves its fields out, with a line in problems;
    an answer that says the access is gone raises."""
    answers = body.get("responses") if isinstance(body, dict) else None
    by_path = {
        a["path"]: a for a in (answers if isinstance(answers, list) else []) if isinstance(a, dict)
    }
    fields: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    retry_later = False
    for path, (part, read) in _PATHS.items():
        if part not in wanted:
            continue
        answer = by_path.get(path)
        if answer is None:
            problems.append(f"{path}: no answer in the batch")
            continue
        sub, code = answer.get("body"), answer.get("code")
        sub = sub if isinstance(sub, dict) else {}
        if code != 200:
            kind = sub.get("type")
            detail = f"{path}: answered {code} {kind}:{sub.get('code')}"
            lost = code == 401 or kind == "AUTHENTICATION" or _resolution(sub) == _REAUTHENTICATE
            if lost and kind != "PERMISSION":  # PERMISSION: this path only, not the access
                raise PermanentError(Provider.Smartcar, Reason.ACCESS_REVOKED, detail)
            retry_later = retry_later or _resolution(sub) == _RETRY_LATER or code == 429
            retry_later = retry_later or (isinstance(code, int) and code >= 500)
            problems.append(detail)
            continue
        headers = answer.get("headers")
        headers = (
            {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}
        )
        imperial = str(headers.get("sc-unit-system", "")).lower() == "imperial"
        try:
            got = read(sub, miles_to_km if imperial else as_number)
            if path == _OWN_PATH[part]:
                got["updated_at"] = timestamp(headers.get("sc-data-age"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"{path}: unexpected shape ({type(exc).__name__}: {exc})")
            continue
        fields.setdefault(part, {}).update(got)
    # A part is made when its own path answered (which set its `updated_at`).
    made = {p: _KINDS[p](**values) for p, values in fields.items() if "updated_at" in values}
    return VehicleData(**made, problems=tuple(problems)), retry_later


class SmartcarAdapter(CodeFlowAdapter):
    provider = Provider.Smartcar
    authorize_url = "https://connect.smartcar.com/oauth/authorize"
    token_url = "https://auth.smartcar.com/oauth/token"
    api_url = "https://api.smartcar.com/v2.0"
    single_use_refresh = True  # a refresh token is rotated on use
    webhook_header = "sc-signature"
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

    def read_data(self, account: AccountRef, vehicle_id: str, parts: set[str]) -> VehicleData:
        """One batch call for every path the `parts` need, in metric units."""
        wanted = [part for part in _OWN_PATH if part in parts]
        if not wanted:
            return VehicleData()
        paths = [path for path, (part, _) in _PATHS.items() if part in wanted]
        url = self._endpoint(self.api_url).rstrip("/") + f"/vehicles/{vehicle_id}/batch"
        headers = {
            "Authorization": f"Bearer {account.require_tokens().access_token}",
            "SC-Unit-System": "metric",
        }
        answer = self._send(
            "POST",
            url,
            f"POST /vehicles/{vehicle_id}/batch",
            headers=headers,
            json={"requests": [{"path": p} for p in paths]},
        )
        try:
            body = answer.json()
        except ValueError:
            body = None
        data, retry_later = _batch_data(body, wanted)
        if retry_later and not any(getattr(data, part) for part in wanted):
            # nothing to show now (a car asleep, the provider busy): the step tries later
            raise RetryableError(self.provider, "batch: every part answered retry later")
        return data

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        resolution = _resolution(body)
        detail = (
            f"{what} answered {response.status_code} {body.get('type', '')}:{body.get('code', '')}"
        )
        if resolution == _RETRY_LATER or response.status_code == 429 or response.status_code >= 500:
            return RetryableError(self.provider, detail, parse_retry_after(response))
        if body.get("type") == "PERMISSION":  # comes with REAUTHENTICATE: check it first
            return PermanentError(self.provider, Reason.SCOPE_NOT_GRANTED, detail)
        if resolution == _REAUTHENTICATE or response.status_code == 401:
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        if body.get("type") == "COMPATIBILITY":
            return PermanentError(self.provider, Reason.CONNECT_PROVIDER_NOT_SUPPORTED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)

    # -- webhooks ---------------------------------------------------------------------------

    @classmethod
    def verify_webhook(cls, secret: str, raw: bytes, header: str | None) -> bool:
        claimed = (header or "").strip().lower()
        if not claimed or not claimed.isascii():  # compare_digest refuses non-ASCII text
            return False
        return hmac.compare_digest(hmac_hex(secret, raw, "sha256"), claimed)

    @classmethod
    def webhook_challenge(cls, body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("eventType") != "VERIFY":
            return None
        data = body.get("data")
        challenge = data.get("challenge") if isinstance(data, dict) else None
        return challenge if isinstance(challenge, str) else None

    @classmethod
    def answer_challenge(cls, secret: str, challenge: str) -> str:
        return hmac_hex(secret, challenge.encode(), "sha256")

    @classmethod
    def delivery_key(cls, raw: bytes, body: Any) -> str:
        event_id = body.get("eventId") if isinstance(body, dict) else None
        if isinstance(event_id, str) and 0 < len(event_id) <= 100:
            return event_id
        return hashlib.sha256(raw).hexdigest()

    @classmethod
    def parse_webhook(cls, body: Any) -> list[ProviderEvent]:
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
            if any(getattr(read, part) for part in _OWN_PATH):
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
        and (e.get("type") in _LOST_ACCESS or _resolution(e) == _REAUTHENTICATE)
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


def _value(name: str, read: Callable[[Any], Any]) -> _Fields:
    return lambda body: {name: read(body["value"])}


_SIGNALS: dict[str, tuple[str, _Fields]] = {
    "tractionbattery-stateofcharge": ("battery", _value("percentage", as_number)),
    "tractionbattery-range": ("battery", lambda b: {"range_km": _distance_of(b)}),
    "tractionbattery-nominalcapacity": (
        "battery",
        lambda b: {"capacity_kwh": as_number(b["capacity"])},
    ),
    "charge-ischarging": ("charge", _value("is_charging", as_bool)),
    "charge-ischargingcableconnected": ("charge", _value("is_plugged_in", as_bool)),
    "charge-chargelimits": ("charge", lambda b: {"charge_limit_percentage": _global_limit(b)}),
    "location-preciselocation": ("location", _coordinates),
    "odometer-traveleddistance": ("odometer", lambda b: {"value_km": _required(_distance_of(b))}),
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
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(f"signal {code}: unexpected shape ({type(exc).__name__})")
            continue
        got = fields.setdefault(part, {})
        got.update(values)
        if when and (got.get("updated_at") is None or when < got["updated_at"]):
            got["updated_at"] = when  # the oldest measurement in the part
    parts = {part: _KINDS[part](**values) for part, values in fields.items()}
    return VehicleData(**parts, problems=tuple(problems))
