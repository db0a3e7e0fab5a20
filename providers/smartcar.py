"""Smartcar: Connect (OAuth 2 code flow), the v2.0 vehicle API and its webhooks.

Errors carry ``type``, ``code`` and ``resolution.type``; ``RETRY_LATER`` is transient,
``REAUTHENTICATE`` means the access is gone. The car's data is read with one batch call
whose sub-responses succeed or fail each on its own (a withheld permission fails its path
only). Its webhooks are read in ``providers.smartcar_webhooks``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

import providers.smartcar_webhooks as smartcar_webhooks
from providers.code_flow import CodeFlowAdapter
from providers.data import (
    PART_TYPES,
    SHAPE_ERRORS,
    VehicleData,
    as_bool,
    as_number,
    fraction_to_percent,
    miles_to_km,
    shape_problem,
    timestamp,
)
from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import concurrently
from providers.names import Provider, Scope
from providers.smartcar_webhooks import REAUTHENTICATE, Fields, coordinates, required, resolution
from providers.values import AccountRef, VehicleInfo
from providers.webhooks import ProviderEvent

__all__ = ["SmartcarAdapter"]

# The `error` of Connect's redirect back, by what it means for the connection.
_CALLBACK_ERRORS = {
    "access_denied": Reason.AUTHORIZATION_DENIED,
    "vehicle_incompatible": Reason.CONNECT_PROVIDER_NOT_SUPPORTED,
    "no_vehicles": Reason.CONNECT_NO_VEHICLE,
}
_RETRY_LATER = "RETRY_LATER"


def _charging(state: Any) -> bool | None:
    if state is not None and not isinstance(state, str):
        raise TypeError(f"state is a {type(state).__name__}")
    return None if state is None else state == "CHARGING"


# Each batch path: the part it fills and its fields, from (body, distance in km). A part
# is made when its own path (the first of the part here) answered.
_PATHS: dict[str, tuple[str, Fields]] = {
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
    "/location": ("location", coordinates),
    "/odometer": ("odometer", lambda b, km: {"value_km": required(km(b["distance"]))}),
}
_OWN_PATH = {
    "battery": "/battery",
    "charge": "/charge",
    "location": "/location",
    "odometer": "/odometer",
}


def _batch_data(body: Any, wanted: list[str]) -> tuple[VehicleData, bool]:
    """The parts of a batch answer, and whether a path asked to be tried later. A path
    that failed or answered an odd shape leaves its fields out, with a line in problems;
    an answer that says the access is gone raises."""
    answers = body.get("responses") if isinstance(body, dict) else None
    by_path = {
        a["path"]: a
        for a in (answers if isinstance(answers, list) else [])
        if isinstance(a, dict) and isinstance(a.get("path"), str)
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
            lost = code == 401 or kind == "AUTHENTICATION" or resolution(sub) == REAUTHENTICATE
            if lost and kind != "PERMISSION":  # PERMISSION: this path only, not the access
                raise PermanentError(Provider.Smartcar, Reason.ACCESS_REVOKED, detail)
            retry_later = retry_later or resolution(sub) == _RETRY_LATER or code == 429
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
        except SHAPE_ERRORS as exc:
            problems.append(shape_problem(path, exc))
            continue
        fields.setdefault(part, {}).update(got)
    # A part is made when its own path answered (which set its `updated_at`).
    made = {p: PART_TYPES[p](**values) for p, values in fields.items() if "updated_at" in values}
    return VehicleData(**made, problems=tuple(problems)), retry_later


class SmartcarAdapter(CodeFlowAdapter):
    provider = Provider.Smartcar
    authorize_url = "https://connect.smartcar.com/oauth/authorize"
    token_url = "https://auth.smartcar.com/oauth/token"
    api_url = "https://api.smartcar.com/v2.0"
    # The paths it calls, as metrics' endpoint labels (providers.http.MeteredTransport).
    endpoints = (
        "/oauth/token",
        "/v2.0/vehicles",
        "/v2.0/vehicles/{id}",
        "/v2.0/vehicles/{id}/vin",
        "/v2.0/vehicles/{id}/permissions",
        "/v2.0/vehicles/{id}/application",
        "/v2.0/vehicles/{id}/batch",
    )
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
        advice = resolution(body)
        detail = (
            f"{what} answered {response.status_code} {body.get('type', '')}:{body.get('code', '')}"
        )
        if advice == _RETRY_LATER or response.status_code == 429 or response.status_code >= 500:
            return RetryableError(self.provider, detail, parse_retry_after(response))
        if body.get("type") == "PERMISSION":  # comes with REAUTHENTICATE: check it first
            return PermanentError(self.provider, Reason.SCOPE_NOT_GRANTED, detail)
        if advice == REAUTHENTICATE or response.status_code == 401:
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        if body.get("type") == "COMPATIBILITY":
            return PermanentError(self.provider, Reason.CONNECT_PROVIDER_NOT_SUPPORTED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)

    # -- webhooks (read in providers.smartcar_webhooks) ---------------------------------------

    @classmethod
    def verify_webhook(cls, secret: str, raw: bytes, header: str | None) -> bool:
        return smartcar_webhooks.verify_webhook(secret, raw, header)

    @classmethod
    def webhook_challenge(cls, body: Any) -> str | None:
        return smartcar_webhooks.webhook_challenge(body)

    @classmethod
    def answer_challenge(cls, secret: str, challenge: str) -> str:
        return smartcar_webhooks.answer_challenge(secret, challenge)

    @classmethod
    def delivery_key(cls, raw: bytes, body: Any) -> str:
        return smartcar_webhooks.delivery_key(raw, body)

    @classmethod
    def parse_webhook(cls, body: Any) -> list[ProviderEvent]:
        return smartcar_webhooks.parse_webhook(body)
