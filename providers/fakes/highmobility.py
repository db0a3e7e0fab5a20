"""A faithful fake of High Mobility's OAuth: the owner panel's consent (PKCE S256
accepted and enforced), ``POST /v1/access_tokens`` with a JSON body that carries the
app's credentials, ``redirect_uri`` matched exactly, a refresh token that stays in force
(a refresh answers no new one); the vehicles a token grants; and the car's data in the
Auto API's JSON (``GET /v1/vehicle-data/autoapi-13/{vin}``), one capability per granted
permission."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import Reading
from providers.fakes.oauth import FakeCodeFlow

__all__ = ["FakeHighMobility"]


def _error(status: int, title: str) -> JSONResponse:
    return JSONResponse({"errors": [{"title": title, "source": "fake"}]}, status)


class FakeHighMobility(FakeCodeFlow):
    name = "HighMobility"
    location_scopes = ("vehicle:location",)
    authorize_path = "/oauth/new"
    token_path = "/v1/access_tokens"
    token_lifetime = 3600
    rotates_refresh = False

    @staticmethod
    def default_vehicle() -> dict[str, Any]:
        return {"make": "BMW", "model": "i4", "year": 2023, "vin": "WBY71AW010FP00001"}

    def routes(self) -> list[Route]:
        return [
            *self.oauth_routes(),
            Route("/v1/vehicles", self.vehicles, methods=["GET"]),
            Route("/v1/vehicles/{vin}", self.vehicle, methods=["GET"]),
            Route("/v1/vehicle-data/autoapi-13/{vin}", self.vehicle_data, methods=["GET"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        response = _error(status, "Service unavailable" if status >= 500 else "Too many requests")
        if retry_after is not None:
            response.headers["retry-after"] = str(int(retry_after))
        return response

    async def token_fields(self, request: Request) -> dict[str, str]:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return {}  # High Mobility takes JSON only
        try:
            body = json.loads(await request.body())
        except ValueError:
            return {}
        return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}

    def client_credentials(self, request: Request, fields: dict[str, str]) -> tuple[str, str]:
        return fields.get("client_id", ""), fields.get("client_secret", "")

    def _view(self, v: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
        return {
            "vin": v["vin"],
            "brand": v["make"],
            "model": v["model"],
            "year": v["year"],
            "scopes": scopes,
        }

    async def vehicles(self, request: Request) -> Response:
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "Invalid access token")
        return JSONResponse(
            {"vehicles": [{"vin": v["vin"], "brand": v["make"]} for v in grant.account.vehicles]}
        )

    async def vehicle(self, request: Request) -> Response:
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "Invalid access token")
        for v in grant.account.vehicles:
            if v["vin"] == request.path_params["vin"]:
                return JSONResponse(self._view(v, grant.scopes))
        return _error(404, "Vehicle not found")

    async def vehicle_data(self, request: Request) -> Response:
        grant = self.bearer_grant(request)
        self.data_reads += 1
        if grant is None:
            return _error(401, "Invalid access token")
        vin = request.path_params["vin"]
        if not any(v["vin"] == vin for v in grant.account.vehicles):
            return _error(404, "Vehicle not found")
        return JSONResponse(auto_api(self.reading(vin), grant.scopes))


def auto_api(reading: Reading, scopes: list[str]) -> dict[str, Any]:
    """A reading in the Auto API's JSON: a capability only where its permission was
    granted; fractions for percentages; quantities with their units."""
    when = datetime.fromtimestamp(reading.measured_at, UTC).isoformat().replace("+00:00", "Z")

    def prop(data: Any) -> dict[str, Any]:
        return {"data": data, "timestamp": when}

    def quantity(value: float, unit: str) -> dict[str, Any]:
        return prop({"value": value, "unit": unit})

    body: dict[str, Any] = {}
    if "vehicle:charging" in scopes:
        body["charging"] = {
            "battery_level": prop(reading.battery_percent / 100),
            "estimated_range": quantity(reading.range_km, "kilometers"),
            "battery_capacity": quantity(reading.capacity_kwh, "kilowatt_hours"),
            "plugged_in": prop("plugged_in" if reading.plugged_in else "unplugged"),
            "status": prop("charging" if reading.charging else "not_charging"),
            "charging_rate": quantity(
                reading.charge_rate_kw if reading.charging else 0.0, "kilowatts"
            ),
            "charge_limit": prop(reading.charge_limit_percent / 100),
            "time_to_complete_charge": quantity(
                reading.minutes_to_full if reading.charging else 0.0, "minutes"
            ),
        }
    if "vehicle:location" in scopes:
        body["vehicle_location"] = {
            "coordinates": prop({"latitude": reading.latitude, "longitude": reading.longitude})
        }
    if "vehicle:diagnostics" in scopes:
        body["diagnostics"] = {"odometer": quantity(reading.odometer_km, "kilometers")}
    return body
