"""A faithful fake of Smartcar: Connect's consent page, the token endpoint (Basic auth,
form body, ``redirect_uri`` must match, codes single use and valid 10 minutes, access
2 h, refresh 60 d rotated on use) and the v2.0 vehicle API with Smartcar's error format."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import Grant
from providers.fakes.oauth import FakeCodeFlow

__all__ = ["FakeSmartcar"]


def _error(status: int, type_: str, code: str | None, resolution: str | None) -> JSONResponse:
    return JSONResponse(
        {
            "type": type_,
            "code": code,
            "description": f"{type_} error (fake)",
            "docURL": "https://smartcar.com/docs/errors/",
            "statusCode": status,
            "resolution": {"type": resolution},
            "requestId": "fake",
        },
        status_code=status,
    )


class FakeSmartcar(FakeCodeFlow):
    name = "Smartcar"
    location_scopes = ("read_location",)
    code_ttl = 600.0
    token_lifetime = 7200

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
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        if status == 429:
            response = _error(429, "RATE_LIMIT", "VEHICLE", "RETRY_LATER")
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
