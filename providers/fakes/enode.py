"""A faithful fake of Enode: client-credentials tokens (Basic auth), the ``Enode-Version``
header, link sessions (``POST /users/{userId}/link``: single use, 24 h) whose Link page
has Allow and Deny and sends the user back to ``redirectUri`` with no code, the whole
maker account linked to the Enode user, vehicles under ``/users/{userId}/vehicles``, and
problem-details errors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import FakeProvider, Grant

__all__ = ["FakeEnode"]

LINK_TTL = 24 * 3600


def _problem(status: int, title: str, detail: str = "") -> JSONResponse:
    return JSONResponse(
        {
            "type": f"https://developers.enode.com/api/problems/{title.lower().replace(' ', '-')}",
            "title": title,
            "detail": detail or title,
        },
        status,
        media_type="application/problem+json",
    )


@dataclass
class LinkSession:
    client_id: str
    user_id: str
    scopes: list[str]
    redirect_uri: str
    created_at: float
    used: bool = False


class FakeEnode(FakeProvider):
    name = "Enode"
    location_scopes = ("vehicle:read:location",)

    def reset(self) -> None:
        super().reset()
        self.app_tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expiry)
        self.token_requests = 0
        self.links: dict[str, LinkSession] = {}
        self.users: dict[str, Grant] = {}  # Enode user id -> what their link granted

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/token", self.token, methods=["POST"]),
            Route("/users/{user_id}/link", self.create_link, methods=["POST"]),
            Route("/link/{token}", self.link_page, methods=["GET"]),
            Route("/link/{token}", self.link_decide, methods=["POST"]),
            Route("/users/{user_id}/vehicles", self.user_vehicles, methods=["GET"]),
            Route("/users/{user_id}", self.delete_user, methods=["DELETE"]),
            Route("/vehicles/{vehicle_id}", self.vehicle, methods=["GET"]),
        ]

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        response = _problem(status, "Service Unavailable" if status >= 500 else "Too Many Requests")
        if retry_after is not None:
            response.headers["retry-after"] = str(int(retry_after))
        return response

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "token_requests": self.token_requests}

    # -- the app's token -------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        client_id, secret = self.basic_auth(request)
        form = await request.form()
        if not self.check_secret(client_id, secret):
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        self.token_requests += 1
        token = secrets.token_urlsafe(32)
        self.app_tokens[token] = (client_id, self.now() + 3600)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def _app(self, request: Request) -> tuple[str | None, Response | None]:
        header = request.headers.get("authorization", "")
        entry = (
            self.app_tokens.get(header[7:].strip())
            if header.lower().startswith("bearer ")
            else None
        )
        if entry is None or entry[1] < self.now():
            return None, _problem(401, "Unauthorized", "Invalid or expired access token")
        if not request.headers.get("enode-version"):
            return None, _problem(400, "Bad Request", "Enode-Version header is required")
        return entry[0], None

    # -- Link ----------------------------------------------------------------------------------

    async def create_link(self, request: Request) -> Response:
        client_id, refused = self._app(request)
        if client_id is None:
            return refused  # type: ignore[return-value]
        body = await request.json()
        if body.get("vendorType") != "vehicle" or not body.get("redirectUri"):
            return _problem(400, "Bad Request", "vendorType and redirectUri are required")
        token = secrets.token_urlsafe(24)
        self.links[token] = LinkSession(
            client_id,
            request.path_params["user_id"],
            list(body.get("scopes", [])),
            str(body["redirectUri"]),
            self.now(),
        )
        link_url = f"{self.base_of(request)}/link/{token}"
        return JSONResponse({"linkUrl": link_url, "linkToken": token})

    def _session(self, token: str) -> LinkSession | None:
        session = self.links.get(token)
        if session is None or session.used or self.now() - session.created_at > LINK_TTL:
            return None
        return session

    async def link_page(self, request: Request) -> Response:
        session = self._session(request.path_params["token"])
        if session is None:
            return Response("This link has expired or was used already", 400)
        return self.consent_page(request, f"/link/{request.path_params['token']}", session.scopes)

    async def link_decide(self, request: Request) -> Response:
        session = self._session(request.path_params["token"])
        if session is None:
            return Response("This link has expired or was used already", 400)
        session.used = True
        form = await request.form()
        if form.get("decision") != "allow":
            return self.redirect_back(session.redirect_uri, {"error": "access_denied"})
        account = self.accounts.get(str(form.get("account", "")))
        if account is None:
            return Response("unknown account", 400)
        granted = [s for s in session.scopes if s not in account.withheld_scopes]
        self.users[session.user_id] = Grant(
            session.client_id, session.redirect_uri, account, granted, self.now()
        )
        self.exchanges[request.path_params["token"]] += 1
        return self.redirect_back(session.redirect_uri, {})

    # -- the API ----------------------------------------------------------------------------------

    def _vehicle_view(self, user_id: str, grant: Grant, v: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{user_id}:{v['vin']}",
            "userId": user_id,
            "vendor": v["make"].upper(),
            "isReachable": True,
            "information": {
                "vin": v["vin"],
                "brand": v["make"],
                "model": v["model"],
                "year": v["year"],
            },
            "scopes": grant.scopes,
        }

    async def user_vehicles(self, request: Request) -> Response:
        client_id, refused = self._app(request)
        if client_id is None:
            return refused  # type: ignore[return-value]
        user_id = request.path_params["user_id"]
        grant = self.users.get(user_id)
        data = (
            [self._vehicle_view(user_id, grant, v) for v in grant.account.vehicles] if grant else []
        )
        return JSONResponse({"data": data, "pagination": {"after": None, "before": None}})

    async def delete_user(self, request: Request) -> Response:
        client_id, refused = self._app(request)
        if client_id is None:
            return refused  # type: ignore[return-value]
        if self.users.pop(request.path_params["user_id"], None) is not None:
            self.revocations += 1
        return Response(status_code=204)

    async def vehicle(self, request: Request) -> Response:
        client_id, refused = self._app(request)
        if client_id is None:
            return refused  # type: ignore[return-value]
        user_id, _, vin = request.path_params["vehicle_id"].partition(":")
        grant = self.users.get(user_id)
        if grant is not None:
            for v in grant.account.vehicles:
                if v["vin"] == vin:
                    return JSONResponse(self._vehicle_view(user_id, grant, v))
        return _problem(404, "Not Found", "Vehicle not found")
