"""A faithful fake of the Tesla Fleet API: auth.tesla.com's authorize (``state``
required) and token endpoints (app credentials in the form body, ``audience`` must name
this regional API), access tokens that are JWTs with an ``scp`` claim, single-use refresh
tokens, ``/api/1/vehicles`` in Tesla's ``{response, count}`` envelope, ``408`` asleep,
``vehicle_data`` by the sections asked for (distances in miles; the coordinates only with
``location_data`` and the ``vehicle_location`` scope), and ``wake_up``."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import Grant, Reading
from providers.fakes.oauth import FakeCodeFlow

__all__ = ["FakeTesla"]

KM_PER_MILE = 1.609344
# What `vehicle_data` answers when no `endpoints` are named (no location: Tesla asks for
# `location_data` by name since 2023).
_DEFAULT_SECTIONS = ("charge_state", "drive_state", "vehicle_state")


def _charging_state(r: Reading) -> str:
    if not r.plugged_in:
        return "Disconnected"
    if r.charging:
        return "Charging"
    return "Complete" if r.battery_percent >= r.charge_limit_percent else "Stopped"


def _error(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"response": None, "error": error, "error_description": ""}, status, headers=headers
    )


class FakeTesla(FakeCodeFlow):
    name = "Tesla"
    location_scopes = ("vehicle_location",)
    authorize_path = "/oauth2/v3/authorize"
    token_path = "/oauth2/v3/token"
    state_required = True
    token_lifetime = 8 * 3600

    def reset(self) -> None:
        super().reset()
        self.signing_key = secrets.token_hex(32)
        self.wake_ups = 0  # wake_up commands received (the service must send none)
        # Sections a test sets, by name, answered instead of the car's (odd shapes).
        self.data_overrides: dict[str, Any] = {}

    @staticmethod
    def default_vehicle() -> dict[str, Any]:
        return {"make": "Tesla", "model": "Model 3", "year": 2022, "vin": "5YJ3E1EA7NF000001"}

    @staticmethod
    def vehicle_id(vin: str) -> int:
        return int(hashlib.sha256(vin.encode()).hexdigest()[:12], 16)

    def routes(self) -> list[Route]:
        return [
            *self.oauth_routes(),
            Route("/api/1/vehicles", self.vehicles, methods=["GET"]),
            Route("/api/1/vehicles/{id}", self.vehicle, methods=["GET"]),
            Route("/api/1/vehicles/{id}/vehicle_data", self.vehicle_data, methods=["GET"]),
            Route("/api/1/vehicles/{id}/wake_up", self.wake_up, methods=["POST"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        headers = {}
        if retry_after is not None:
            headers = {
                "retry-after": str(int(retry_after)),
                "ratelimit-reset": str(int(retry_after)),
            }
        if status == 408:
            return _error(408, "vehicle unavailable: vehicle is offline or asleep", headers)
        return _error(
            status, "upstream internal error" if status >= 500 else "rate limited", headers
        )

    # -- OAuth specifics -------------------------------------------------------------------

    def client_credentials(self, request: Request, fields: dict[str, str]) -> tuple[str, str]:
        return fields.get("client_id", ""), fields.get("client_secret", "")

    def check_token_request(self, request: Request, fields: dict[str, str]) -> str | None:
        if fields.get("grant_type") != "authorization_code":
            return None
        if fields.get("audience", "").rstrip("/") != self.base_of(request):
            return "invalid_request"  # tokens are minted for one named regional API
        return None

    def token_response(self, grant: Grant) -> dict[str, Any]:
        now = int(self.now())
        access = jwt.encode(
            {
                "iss": "https://auth.tesla.com/oauth2/v3/nts",
                "sub": grant.account.id,
                "scp": grant.scopes,
                "iat": now,
                "exp": now + int(self.token_lifetime),
                "jti": secrets.token_hex(8),
            },
            self.signing_key,
            algorithm="HS256",
        )
        return self._issue(grant, access)

    # -- the Fleet API -----------------------------------------------------------------------

    def _view(self, v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.vehicle_id(v["vin"]),
            "vehicle_id": self.vehicle_id(v["vin"][::-1]),
            "vin": v["vin"],
            "display_name": v.get("model", ""),
            "state": "online",
        }

    async def vehicles(self, request: Request) -> Response:
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "invalid bearer token")
        cars = [self._view(v) for v in grant.account.vehicles]
        return JSONResponse({"response": cars, "count": len(cars)})

    async def vehicle(self, request: Request) -> Response:
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "invalid bearer token")
        if "vehicle_device_data" not in grant.scopes:
            return _error(403, "Unauthorized missing scopes")
        for v in grant.account.vehicles:
            if str(self.vehicle_id(v["vin"])) == request.path_params["id"]:
                return JSONResponse({"response": self._view(v)})
        return _error(404, "not_found")

    def _car(self, grant: Grant, vehicle_id: str) -> dict[str, Any] | None:
        for v in grant.account.vehicles:
            if str(self.vehicle_id(v["vin"])) == vehicle_id:
                return v
        return None

    async def vehicle_data(self, request: Request) -> Response:
        self.data_reads += 1
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "invalid bearer token")
        if "vehicle_device_data" not in grant.scopes:
            return _error(403, "Unauthorized missing scopes")
        car = self._car(grant, request.path_params["id"])
        if car is None:
            return _error(404, "not_found")
        if car["vin"] in self.asleep:
            return _error(408, "vehicle unavailable: vehicle is offline or asleep")
        asked = request.query_params.get("endpoints")
        sections = set(asked.split(";") if asked else _DEFAULT_SECTIONS)
        r = self.reading(car["vin"])
        stamp = int(r.measured_at * 1000)
        body: dict[str, Any] = {**self._view(car), "state": "online"}
        if "charge_state" in sections:
            body["charge_state"] = {
                "battery_level": round(r.battery_percent),
                "battery_range": round(r.range_km / KM_PER_MILE, 2),
                "charge_limit_soc": round(r.charge_limit_percent),
                "charger_power": round(r.charge_rate_kw) if r.charging else 0,
                "charging_state": _charging_state(r),
                "minutes_to_full_charge": round(r.minutes_to_full) if r.charging else 0,
                "timestamp": stamp,
            }
        if sections & {"drive_state", "location_data"}:
            drive: dict[str, Any] = {"shift_state": None, "speed": None, "timestamp": stamp}
            if "location_data" in sections and "vehicle_location" in grant.scopes:
                drive.update(latitude=r.latitude, longitude=r.longitude, heading=90)
            body["drive_state"] = drive
        if "vehicle_state" in sections:
            body["vehicle_state"] = {
                "odometer": round(r.odometer_km / KM_PER_MILE, 3),
                "locked": True,
                "timestamp": stamp,
            }
        body.update(self.data_overrides)
        return JSONResponse({"response": body})

    async def wake_up(self, request: Request) -> Response:
        self.wake_ups += 1
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "invalid bearer token")
        car = self._car(grant, request.path_params["id"])
        if car is None:
            return _error(404, "not_found")
        self.asleep.discard(car["vin"])
        return JSONResponse({"response": {**self._view(car), "state": "online"}})
