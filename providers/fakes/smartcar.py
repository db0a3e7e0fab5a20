"""A faithful fake of Smartcar: Connect's consent page, the token endpoint (Basic auth,
form body, ``redirect_uri`` must match, codes single use and valid 10 minutes, access
2 h, refresh 60 d rotated on use), the v2.0 vehicle API with Smartcar's error format,
its batch endpoint (one sub-response per path, each with its own permission, imperial
units unless ``SC-Unit-System: metric``), and the webhook bodies Smartcar sends."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import Grant, Reading
from providers.fakes.oauth import FakeCodeFlow

__all__ = ["FakeSmartcar"]


def _error_body(
    status: int, type_: str, code: str | None, resolution: str | None
) -> dict[str, Any]:
    return {
        "type": type_,
        "code": code,
        "description": f"{type_} error (fake)",
        "docURL": "https://smartcar.com/docs/errors/",
        "statusCode": status,
        "resolution": {"type": resolution},
        "requestId": "fake",
    }


def _error(status: int, type_: str, code: str | None, resolution: str | None) -> JSONResponse:
    return JSONResponse(_error_body(status, type_, code, resolution), status_code=status)


KM_PER_MILE = 1.609344
# The permission each batch path needs.
_PERMISSIONS = {
    "/battery": "read_battery",
    "/battery/nominal_capacity": "read_battery",
    "/charge": "read_charge",
    "/charge/limit": "read_charge",
    "/location": "read_location",
    "/odometer": "read_odometer",
}


def _iso(epoch: float) -> str:
    """Smartcar's timestamps: ISO 8601 in UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _view(path: str, r: Reading, metric: bool) -> dict[str, Any]:
    """A path's body, from the car's reading (service units) in Smartcar's units."""
    km = 1.0 if metric else 1 / KM_PER_MILE
    state = "CHARGING" if r.charging else "FULLY_CHARGED" if r.plugged_in else "NOT_CHARGING"
    views: dict[str, dict[str, Any]] = {
        "/battery": {
            "percentRemaining": r.battery_percent / 100,
            "range": round(r.range_km * km, 2),
        },
        "/battery/nominal_capacity": {
            "availableCapacities": [{"capacity": r.capacity_kwh, "description": None}],
            "capacity": {"source": "SMARTCAR", "nominal": r.capacity_kwh},
            "url": None,
        },
        "/charge": {"isPluggedIn": r.plugged_in, "state": state},
        "/charge/limit": {"limit": r.charge_limit_percent / 100},
        "/location": {"latitude": r.latitude, "longitude": r.longitude},
        "/odometer": {"distance": round(r.odometer_km * km, 2)},
    }
    return views[path]


class FakeSmartcar(FakeCodeFlow):
    name = "Smartcar"
    location_scopes = ("read_location",)
    code_ttl = 600.0
    token_lifetime = 7200

    def reset(self) -> None:
        super().reset()
        # Sub-responses a test sets, by path: (code, body), answered instead of the car's.
        self.batch_overrides: dict[str, tuple[int, Any]] = {}

    @staticmethod
    def vehicle_id(vin: str) -> str:
        return hashlib.sha256(vin.encode()).hexdigest()[:36]

    def routes(self) -> list[Route]:
        return [
            *self.oauth_routes(),
            Route("/v2.0/vehicles", self.vehicles, methods=["GET"]),
            Route("/v2.0/vehicles/{id}", self.vehicle, methods=["GET"]),
            Route("/v2.0/vehicles/{id}/vin", self.vin, methods=["GET"]),
            Route("/v2.0/vehicles/{id}/permissions", self.permissions, methods=["GET"]),
            Route("/v2.0/vehicles/{id}/application", self.disconnect, methods=["DELETE"]),
            Route("/v2.0/vehicles/{id}/batch", self.batch, methods=["POST"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        if status == 429:
            response = _error(429, "RATE_LIMIT", "VEHICLE", "RETRY_LATER")
        elif status == 401:  # as Smartcar refuses a token: the user must consent again
            response = _error(401, "AUTHENTICATION", None, "REAUTHENTICATE")
        else:
            response = _error(status, "SERVER", "INTERNAL", "RETRY_LATER")
        if retry_after is not None:
            response.headers["retry-after"] = str(int(retry_after))
        return response

    async def decide(self, request: Request) -> Response:
        form = await request.form()
        account = self.accounts.get(str(form.get("account", "")))
        if form.get("decision") == "allow" and account is not None and not account.vehicles:
            back = {"state": str(form["state"])} if form.get("state") else {}
            return self.redirect_back(
                str(form.get("redirect_uri", "")),
                {"error": "no_vehicles", "error_description": "No vehicles", **back},
            )
        return await super().decide(request)

    # -- the vehicle API -------------------------------------------------------------------

    def _find(self, grant: Grant, vehicle_id: str) -> dict[str, Any] | None:
        for v in grant.account.vehicles:
            if self.vehicle_id(v["vin"]) == vehicle_id:
                return v
        return None

    async def vehicles(self, request: Request) -> Response:
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "AUTHENTICATION", None, "REAUTHENTICATE")
        ids = [self.vehicle_id(v["vin"]) for v in grant.account.vehicles]
        return JSONResponse({"vehicles": ids, "paging": {"count": len(ids), "offset": 0}})

    async def vehicle(self, request: Request) -> Response:
        return self._read(request, "read_vehicle_info", self._attributes)

    async def vin(self, request: Request) -> Response:
        return self._read(request, "read_vin", lambda v: {"vin": v["vin"]})

    async def permissions(self, request: Request) -> Response:
        return self._read(
            request,
            None,
            lambda v, g: {"permissions": g.scopes, "paging": {"count": len(g.scopes), "offset": 0}},
        )

    async def disconnect(self, request: Request) -> Response:
        """The app gives its access to the vehicle back: the user's tokens stop working."""
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "AUTHENTICATION", None, "REAUTHENTICATE")
        for token in [t for t, (g, _) in self.tokens.items() if g is grant]:
            del self.tokens[token]
        self.revocations += 1
        return JSONResponse({"status": "success"})

    @staticmethod
    def _attributes(v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": FakeSmartcar.vehicle_id(v["vin"]),
            "make": v["make"].upper(),  # Smartcar answers makes in upper case
            "model": v["model"],
            "year": v["year"],
        }

    def _read(
        self, request: Request, permission: str | None, view: Callable[..., dict[str, Any]]
    ) -> Response:
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "AUTHENTICATION", None, "REAUTHENTICATE")
        vehicle = self._find(grant, request.path_params["id"])
        if vehicle is None:
            return _error(404, "RESOURCE_NOT_FOUND", "PATH", None)
        if permission is None:
            return JSONResponse(view(vehicle, grant))
        if permission not in grant.scopes:
            return _error(403, "PERMISSION", None, "REAUTHENTICATE")
        return JSONResponse(view(vehicle))

    # -- the car's data ---------------------------------------------------------------------

    async def batch(self, request: Request) -> Response:
        """``POST /vehicles/{id}/batch``: one sub-response per requested path."""
        self.data_reads += 1
        grant = self.bearer_grant(request)
        if grant is None:
            return _error(401, "AUTHENTICATION", None, "REAUTHENTICATE")
        vehicle = self._find(grant, request.path_params["id"])
        if vehicle is None:
            return _error(404, "RESOURCE_NOT_FOUND", "PATH", None)
        try:
            paths = [str(r["path"]) for r in (await request.json())["requests"]]
        except (ValueError, KeyError, TypeError):
            return _error(400, "VALIDATION", "PARAMETER", None)
        metric = request.headers.get("sc-unit-system", "").lower() == "metric"
        reading = self.reading(vehicle["vin"])
        headers = {
            "sc-data-age": _iso(reading.measured_at),
            "sc-unit-system": "metric" if metric else "imperial",
        }
        responses = []
        for path in paths:
            code, body = self._sub_response(path, grant, vehicle["vin"], reading, metric)
            responses.append({"path": path, "code": code, "headers": headers, "body": body})
        return JSONResponse({"responses": responses})

    def _sub_response(
        self, path: str, grant: Grant, vin: str, reading: Reading, metric: bool
    ) -> tuple[int, Any]:
        if path in self.batch_overrides:
            return self.batch_overrides[path]
        if path not in _PERMISSIONS:
            return 404, _error_body(404, "RESOURCE_NOT_FOUND", "PATH", None)
        if _PERMISSIONS[path] not in grant.scopes:
            return 403, _error_body(403, "PERMISSION", None, "REAUTHENTICATE")
        if vin in self.asleep:  # the car does not answer now
            return 409, _error_body(409, "VEHICLE_STATE", "ASLEEP", "RETRY_LATER")
        return 200, _view(path, reading, metric)

    # -- webhook bodies (a test signs and posts them) ----------------------------------------

    def vehicle_state_event(self, vehicle_id: str, vin: str) -> dict[str, Any]:
        """A ``VEHICLE_STATE`` delivery carrying the car's reading as signals."""
        r = self.reading(vin)
        meta = {"oemUpdatedAt": int(r.measured_at * 1000), "retrievedAt": int(self.now() * 1000)}

        bodies = {
            "TractionBattery.StateOfCharge": {"value": r.battery_percent, "unit": "percent"},
            "TractionBattery.Range": {"value": r.range_km, "unit": "kilometers"},
            "TractionBattery.NominalCapacity": {"capacity": r.capacity_kwh, "unit": "kWhr"},
            "Charge.IsCharging": {"value": r.charging},
            "Charge.IsChargingCableConnected": {"value": r.plugged_in},
            "Charge.ChargeLimits": {
                "values": [{"type": "global", "limit": r.charge_limit_percent, "condition": None}]
            },
            "Location.PreciseLocation": {"latitude": r.latitude, "longitude": r.longitude},
            "Odometer.TraveledDistance": {"value": r.odometer_km, "unit": "kilometers"},
        }
        signals = []
        for key, body in bodies.items():
            group, name = key.split(".")
            signals.append(
                {
                    "code": f"{group}-{name}".lower(),  # Smartcar's codes: group-name
                    "name": name,
                    "group": group,
                    "body": body,
                    "status": {"value": "SUCCESS"},
                    "meta": meta,
                }
            )
        return self._event("VEHICLE_STATE", vehicle_id, {"signals": signals})

    def vehicle_error_event(self, vehicle_id: str) -> dict[str, Any]:
        """A ``VEHICLE_ERROR`` delivery saying the user's access is gone."""
        error = {
            "type": "AUTHENTICATION",
            "code": None,
            "state": "ERROR",
            "description": "The vehicle owner changed their credentials (fake)",
            "resolution": {"type": "REAUTHENTICATE"},
        }
        return self._event("VEHICLE_ERROR", vehicle_id, {"errors": [error]})

    def _event(self, kind: str, vehicle_id: str, data: dict[str, Any]) -> dict[str, Any]:
        vehicle = {"id": vehicle_id, "make": "TESLA", "model": "Model 3", "year": 2022}
        return {
            "eventId": str(uuid.uuid4()),
            "eventType": kind,
            "data": {"vehicle": vehicle, **data},
            "meta": {"version": "4.0", "deliveredAt": int(self.now() * 1000), "mode": "TEST"},
        }
