"""A faithful fake of Enode: client-credentials tokens (Basic auth), the ``Enode-Version``
header, link sessions (``POST /users/{userId}/link``: single use, 24 h) whose Link page
has Allow and Deny and sends the user back to ``redirectUri`` with no code, the whole
maker account linked to the Enode user, vehicles under ``/users/{userId}/vehicles``, and
problem-details errors.

The vehicle object carries the car's ``chargeState``, ``location`` (latitude and longitude
null unless the link granted ``vehicle:read:location``) and ``odometer``, from the fake's
readings. A user whose car left the maker account (``revoke_account``) is gone: the
vehicle answers 404. ``vehicle_updated_event`` and friends build webhook bodies."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.fakes.common import FakeProvider, Grant, Reading

__all__ = ["FakeEnode"]

LINK_TTL = 24 * 3600
DATA_SCOPE = "vehicle:read:data"
LOCATION_SCOPE = "vehicle:read:location"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


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
        reading = self.reading(v["vin"])
        when = _iso(reading.measured_at)
        return {
            "id": f"{user_id}:{v['vin']}",
            "userId": user_id,
            "vendor": v["make"].upper(),
            "lastSeen": when,
            "isReachable": True,
            "information": {
                "vin": v["vin"],
                "brand": v["make"],
                "model": v["model"],
                "year": v["year"],
            },
            "chargeState": self._charge_state(reading, DATA_SCOPE in grant.scopes, when),
            "location": {
                "latitude": reading.latitude if LOCATION_SCOPE in grant.scopes else None,
                "longitude": reading.longitude if LOCATION_SCOPE in grant.scopes else None,
                "lastUpdated": when if LOCATION_SCOPE in grant.scopes else None,
            },
            "odometer": {
                "distance": reading.odometer_km if DATA_SCOPE in grant.scopes else None,
                "lastUpdated": when if DATA_SCOPE in grant.scopes else None,
            },
            "scopes": grant.scopes,
        }

    @staticmethod
    def _charge_state(reading: Reading, granted: bool, when: str) -> dict[str, Any]:
        """Enode's units are the service's: percent, km, kWh, kW, minutes."""
        values = {
            "batteryLevel": reading.battery_percent,
            "range": reading.range_km,
            "batteryCapacity": reading.capacity_kwh,
            "isPluggedIn": reading.plugged_in,
            "isCharging": reading.charging,
            "isFullyCharged": reading.battery_percent >= reading.charge_limit_percent,
            "chargeRate": reading.charge_rate_kw if reading.charging else None,
            "chargeLimit": reading.charge_limit_percent,
            "chargeTimeRemaining": reading.minutes_to_full if reading.charging else None,
            "powerDeliveryState": (
                "PLUGGED_IN:CHARGING"
                if reading.charging
                else "PLUGGED_IN:STOPPED"
                if reading.plugged_in
                else "UNPLUGGED"
            ),
            "lastUpdated": when,
        }
        return values if granted else dict.fromkeys(values)

    def revoke_account(self, account_id: str) -> None:
        """The car left the maker account the user linked: Enode drops the user's vehicles
        (here, the user), so reads answer 404 and the user's list is empty."""
        super().revoke_account(account_id)
        for user_id in [u for u, g in self.users.items() if g.account.id == account_id]:
            del self.users[user_id]

    # -- webhook bodies (tests sign them with sha1 and post them) ------------------------------

    def webhook_event(self, kind: str, user_id: str, vin: str) -> list[dict[str, Any]]:
        """A delivery of one `kind` event about the user's car `vin`: the vehicle object
        when the user is linked to it, else its id alone."""
        grant = self.users.get(user_id)
        found = [v for v in grant.account.vehicles if v["vin"] == vin] if grant else []
        vehicle = (
            self._vehicle_view(user_id, grant, found[0])
            if grant and found
            else {"id": f"{user_id}:{vin}", "userId": user_id}
        )
        event = {
            "event": kind,
            "createdAt": _iso(self.now()),
            "version": "2024-10-01",
            "user": {"id": user_id},
            "vehicle": vehicle,
        }
        if kind == "user:vehicle:updated":
            event["updatedFields"] = ["chargeState", "location", "odometer"]
        return [event]

    def vehicle_updated_event(self, user_id: str, vin: str) -> list[dict[str, Any]]:
        return self.webhook_event("user:vehicle:updated", user_id, vin)

    def vehicle_deleted_event(self, user_id: str, vin: str) -> list[dict[str, Any]]:
        return self.webhook_event("user:vehicle:deleted", user_id, vin)

    def vehicle_discovered_event(self, user_id: str, vin: str) -> list[dict[str, Any]]:
        return self.webhook_event("user:vehicle:discovered", user_id, vin)

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
        self.data_reads += 1
        user_id, _, vin = request.path_params["vehicle_id"].partition(":")
        grant = self.users.get(user_id)
        if grant is not None:
            for v in grant.account.vehicles:
                if v["vin"] == vin:
                    return JSONResponse(self._vehicle_view(user_id, grant, v))
        return _problem(404, "Not Found", "Vehicle not found")
