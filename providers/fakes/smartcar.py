"""A faithful fake of Smartcar: Connect's consent page, the token endpoint (Basic auth,
form body, ``redirect_uri`` must match, codes single use and valid 10 minutes, access
2 h, refresh 60 d rotated on use) and the v2.0 vehicle API with Smartcar's error format."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import FakeProvider, Grant

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


def _oauth_error(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": f"{error} (fake)"}, status)


class FakeSmartcar(FakeProvider):
    name = "Smartcar"
    code_ttl = 600.0

    @staticmethod
    def vehicle_id(vin: str) -> str:
        return hashlib.sha256(vin.encode()).hexdigest()[:36]

    def routes(self) -> list[Route]:
        return [
            Route("/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/oauth/authorize", self.decide, methods=["POST"]),
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/v2.0/vehicles", self.vehicles, methods=["GET"]),
            Route("/v2.0/vehicles/{id}", self.vehicle, methods=["GET"]),
            Route("/v2.0/vehicles/{id}/vin", self.vin, methods=["GET"]),
            Route("/v2.0/vehicles/{id}/permissions", self.permissions, methods=["GET"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        if status == 429:
            response = _error(429, "RATE_LIMIT", "VEHICLE", "RETRY_LATER")
        else:
            response = _error(status, "SERVER", "INTERNAL", "RETRY_LATER")
        if retry_after is not None:
            response.headers["retry-after"] = str(int(retry_after))
        return response

    # -- Connect ---------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("response_type") != "code":
            return Response("response_type must be code", 400)
        problem = self.check_app(q.get("client_id"), q.get("redirect_uri"))
        if problem:
            return Response(problem, 400)
        return self.consent_page(request, "/oauth/authorize", q.get("scope", "").split())

    async def decide(self, request: Request) -> Response:
        form = await request.form()
        redirect_uri = str(form.get("redirect_uri", ""))
        problem = self.check_app(str(form.get("client_id", "")), redirect_uri)
        if problem:
            return Response(problem, 400)
        state = str(form.get("state", ""))
        back = {"state": state} if state else {}
        if form.get("decision") != "allow":
            return self.redirect_back(
                redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": "User denied access",
                    **back,
                },
            )
        account = self.accounts.get(str(form.get("account", "")))
        if account is None:
            return Response("unknown account", 400)
        if not account.vehicles:
            return self.redirect_back(
                redirect_uri,
                {"error": "no_vehicles", "error_description": "No vehicles", **back},
            )
        requested = str(form.get("scope", "")).split()
        granted = [s for s in requested if s not in account.withheld_scopes]
        grant = Grant(str(form["client_id"]), redirect_uri, account, granted, self.now())
        return self.redirect_back(redirect_uri, {"code": self.issue_code(grant), **back})

    async def token(self, request: Request) -> Response:
        client_id, secret = self._basic_auth(request)
        if client_id is None or not self.check_secret(client_id, secret):
            return _oauth_error(401, "invalid_client")
        form = await request.form()
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.redeem_code(
                str(form.get("code", "")),
                client_id,
                form.get("redirect_uri"),  # type: ignore[arg-type]
            )
            if grant is None:
                return _oauth_error(400, "invalid_grant")
            return JSONResponse(self.issue_tokens(grant))
        if grant_type == "refresh_token":
            old = self.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if old is None or old.client_id != client_id:
                return _oauth_error(400, "invalid_grant")
            return JSONResponse(self.issue_tokens(old))  # rotated: the old one is gone
        return _oauth_error(400, "unsupported_grant_type")

    @staticmethod
    def _basic_auth(request: Request) -> tuple[str | None, str]:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None, ""
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, ""
        return user, password

    # -- the vehicle API -------------------------------------------------------------------

    def _authorized(self, request: Request) -> tuple[Grant | None, Response | None]:
        grant = self.bearer_grant(request)
        if grant is None:
            return None, _error(401, "AUTHENTICATION", None, "REAUTHENTICATE")
        return grant, None

    def _find(self, grant: Grant, vehicle_id: str) -> dict[str, Any] | None:
        for v in grant.account.vehicles:
            if self.vehicle_id(v["vin"]) == vehicle_id:
                return v
        return None

    async def vehicles(self, request: Request) -> Response:
        grant, denied = self._authorized(request)
        if grant is None:
            return denied  # type: ignore[return-value]
        ids = [self.vehicle_id(v["vin"]) for v in grant.account.vehicles]
        return JSONResponse({"vehicles": ids, "paging": {"count": len(ids), "offset": 0}})

    async def vehicle(self, request: Request) -> Response:
        return await self._vehicle_read(request, "read_vehicle_info", self._attributes)

    async def vin(self, request: Request) -> Response:
        return await self._vehicle_read(request, "read_vin", lambda v: {"vin": v["vin"]})

    @staticmethod
    def _attributes(v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": FakeSmartcar.vehicle_id(v["vin"]),
            "make": v["make"].upper(),  # Smartcar answers makes in upper case
            "model": v["model"],
            "year": v["year"],
        }

    async def _vehicle_read(self, request: Request, permission: str, view: Any) -> Response:
        grant, denied = self._authorized(request)
        if grant is None:
            return denied  # type: ignore[return-value]
        vehicle = self._find(grant, request.path_params["id"])
        if vehicle is None:
            return _error(404, "RESOURCE_NOT_FOUND", "PATH", None)
        if permission not in grant.scopes:
            return _error(403, "PERMISSION", None, "REAUTHENTICATE")
        return JSONResponse(view(vehicle))

    async def permissions(self, request: Request) -> Response:
        grant, denied = self._authorized(request)
        if grant is None:
            return denied  # type: ignore[return-value]
        if self._find(grant, request.path_params["id"]) is None:
            return _error(404, "RESOURCE_NOT_FOUND", "PATH", None)
        return JSONResponse(
            {
                "permissions": grant.scopes,
                "paging": {"count": len(grant.scopes), "offset": 0},
            }
        )
