"""What every fake provider shares: registered apps, user accounts with their cars, a
consent page with Allow and Deny, the tokens it issued, a clock the test can move,
injectable faults and latency, counters, and the control API under ``/_fake``.
(The OAuth code flow itself is in ``oauth.py``.)

Control API (JSON):
- ``POST /_fake/apps`` ``{client_id, client_secret, redirect_uris}``: register an OAuth app.
- ``POST /_fake/accounts`` ``{id, vehicles: [{make, model, year, vin}], withheld_scopes}``:
  an account a user can log in as on the consent page (``withheld_scopes``: permissions
  the user unticks).
- ``POST /_fake/faults`` ``{path, status, times, retry_after, delay, probability}``: the
  next ``times`` requests under ``path`` answer ``status`` (``0`` = hang ``delay`` s);
  ``DELETE /_fake/faults`` clears them.
  ``lose_answer: true`` (and any hang, ``status: 0``): the request is processed, then its
  answer is lost (a 504 after ``delay``), as when a connection drops or the caller
  times out after the provider did the work.
- ``POST /_fake/latency`` ``{seconds}``; ``POST /_fake/clock`` ``{advance}`` (tokens
  and codes expire on this clock); ``GET /_fake/stats``; ``POST /_fake/reset``.
- ``POST /_fake/revoke`` ``{account}``: the user revokes the app's access at the
  provider: every token and refresh token of that account's grants stops working.
- ``POST /_fake/asleep`` ``{vin, asleep}``: the car sleeps (a provider that says so,
  Tesla, answers its data with 408) or wakes.
- ``POST /_fake/readings`` ``{vin, ...}``: what the car measures now (see ``Reading``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Account", "FakeProvider", "Fault", "Grant", "Reading"]


@dataclass
class Account:
    id: str
    vehicles: list[dict[str, Any]]
    withheld_scopes: list[str] = field(default_factory=list)


@dataclass
class Grant:
    """What one consent produced: an account, the app, the scopes granted."""

    client_id: str
    redirect_uri: str
    account: Account
    scopes: list[str]
    issued_at: float
    code_challenge: str | None = None


@dataclass
class Fault:
    path: str
    status: int
    times: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    probability: float = 1.0
    lose_answer: bool = False  # process the request, then lose its answer


@dataclass
class Reading:
    """What a car measures, in the service's own units; each fake answers it in its
    provider's format and units. `measured_at` is epoch seconds on the fake's clock."""

    battery_percent: float = 72.0
    range_km: float = 310.5
    capacity_kwh: float = 75.0
    plugged_in: bool = True
    charging: bool = True
    charge_rate_kw: float = 11.0
    charge_limit_percent: float = 90.0
    minutes_to_full: float = 95.0
    latitude: float = 59.9139
    longitude: float = 10.7522
    odometer_km: float = 12345.6
    measured_at: float = 0.0


async def _discard(message: Any) -> None:
    """An ASGI `send` that drops the answer (a lost response)."""


class FakeProvider:
    """Base of every fake; a provider subclass adds its own routes and formats."""

    name = "fake"
    code_ttl = 600.0
    # The provider's scope strings for location, which the "no-location" user unticks.
    location_scopes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        car = self.default_vehicle()
        second = {**car, "vin": car["vin"][:-1] + "2"}
        # Accounts a person can log in as on the consent page (tests add their own).
        self.accounts: dict[str, Account] = {
            "demo": Account("demo", [car]),
            "two-cars": Account("two-cars", [car, second]),
            "no-location": Account("no-location", [car], list(self.location_scopes)),
        }
        self.codes: dict[str, tuple[Grant, bool]] = {}  # code -> (grant, used)
        self.tokens: dict[str, tuple[Grant, float]] = {}  # access token -> (grant, expiry)
        self.refresh_tokens: dict[str, Grant] = {}
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.clock_offset = 0.0
        self.exchanges: Counter[str] = Counter()  # successful exchanges per code
        self.exchange_attempts = 0
        # Codes presented at the token endpoint, per code (spent or not, answer lost or
        # not): a code the service sent twice shows as 2.
        self.code_attempts: Counter[str] = Counter()
        self.revocations = 0  # accesses given back by the app
        self.refresh_attempts = 0  # refresh grants asked for
        self.refreshes = 0  # refresh grants answered with new tokens
        # API calls whose bearer token had expired: the service must never make one.
        self.expired_token_calls = 0
        self.revoked_accounts: set[str] = set()  # users who revoked the app's access
        self.asleep: set[str] = set()  # VINs of cars asleep
        self.readings: dict[str, Reading] = {}
        self.data_reads = 0  # data requests answered (any status)
        self.requests: Counter[str] = Counter()
        # The client's (host, port) of every request: each pair is one TCP connection,
        # so a pooled client shows as few pairs however many calls it makes.
        self.connections: set[tuple[str, int]] = set()
        self.in_flight = 0  # provider calls being answered now (control calls excluded)
        self.peak_in_flight = 0

    @staticmethod
    def default_vehicle() -> dict[str, Any]:
        return {
            "make": "Tesla",
            "model": "Model 3",
            "year": 2022,
            "vin": "5YJ3E1EA7NF000001",
        }

    def now(self) -> float:
        return time.time() + self.clock_offset

    def reading(self, vin: str) -> Reading:
        """What the car measures now (a default reading, measured a minute ago)."""
        reading = self.readings.get(vin)
        if reading is None:
            reading = self.readings[vin] = Reading(measured_at=self.now() - 60)
        return reading

    def revoke_account(self, account_id: str) -> None:
        """The user revokes the app's access at the provider (an override drops what the
        provider holds for the account: tokens, linked users)."""
        self.revoked_accounts.add(account_id)

    # -- OAuth building blocks shared by the code-flow fakes ------------------------------

    def check_app(self, client_id: str | None, redirect_uri: str | None) -> str | None:
        app = self.apps.get(client_id or "")
        if app is None:
            return "unknown client_id"
        if redirect_uri not in app["redirect_uris"]:
            return "redirect_uri is not registered for this application"
        return None

    def check_secret(self, client_id: str, secret: str) -> bool:
        app = self.apps.get(client_id)
        return app is not None and secrets.compare_digest(app["client_secret"], secret)

    def consent_page(self, request: Request, action: str, scopes: list[str]) -> HTMLResponse:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in request.query_params.items()
        )
        options = "".join(
            f'<option value="{html.escape(a)}">{html.escape(a)}</option>' for a in self.accounts
        )
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        page = f"""<!doctype html>
<html><head><title>{self.name} (fake): connect your car</title></head>
<body>
<h1>{self.name} (fake)</h1>
<p>The application asks for:</p><ul>{items}</ul>
<form method="post" action="{html.escape(request.scope.get("root_path", "") + action)}">
{hidden}
<label>Log in as <select name="account">{options}</select></label>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>"""
        return HTMLResponse(page)

    @staticmethod
    def base_of(request: Request) -> str:
        """This fake's own base URL, also when mounted under a prefix (the demo)."""
        url = request.url
        return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"

    @staticmethod
    def basic_auth(request: Request) -> tuple[str, str]:
        """The id and secret of an HTTP Basic ``Authorization`` header, or empty strings."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return "", ""
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return user, password

    @staticmethod
    def redirect_back(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)

    # -- faults --------------------------------------------------------------------------

    def fault_response(self, status: int, retry_after: float | None) -> Response:
        """The body of an injected error, in the provider's format (an override)."""
        headers = {"retry-after": str(int(retry_after))} if retry_after is not None else {}
        return JSONResponse({"error": "injected"}, status_code=status, headers=headers)

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and path.startswith(fault.path):
                if random.random() >= fault.probability:
                    return None
                fault.times -= 1
                return fault
        return None

    # -- the ASGI app ----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def app(self) -> ASGIApp:
        control = [
            Route("/_fake/apps", self._ctl_app, methods=["POST"]),
            Route("/_fake/accounts", self._ctl_account, methods=["POST"]),
            Route("/_fake/faults", self._ctl_fault, methods=["POST"]),
            Route("/_fake/faults", self._ctl_clear_faults, methods=["DELETE"]),
            Route("/_fake/latency", self._ctl_latency, methods=["POST"]),
            Route("/_fake/clock", self._ctl_clock, methods=["POST"]),
            Route("/_fake/stats", self._ctl_stats, methods=["GET"]),
            Route("/_fake/reset", self._ctl_reset, methods=["POST"]),
            Route("/_fake/revoke", self._ctl_revoke, methods=["POST"]),
            Route("/_fake/asleep", self._ctl_asleep, methods=["POST"]),
            Route("/_fake/readings", self._ctl_readings, methods=["POST"]),
            Route("/_fake/client-return", self._client_return, methods=["GET"]),
        ]
        inner = Starlette(routes=control + self.routes())
        fake = self

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            root = scope.get("root_path", "")
            if root and path.startswith(root):  # mounted under a prefix (the demo)
                path = path[len(root) :]
            if scope["type"] == "http" and not path.startswith("/_fake"):
                fake.requests[path] += 1
                if scope.get("client"):
                    fake.connections.add(tuple(scope["client"]))
                fake.in_flight += 1
                fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    await fake._answer(path, scope, receive, send, inner)
                finally:
                    fake.in_flight -= 1
                return
            await inner(scope, receive, send)

        return app

    async def _answer(
        self, path: str, scope: Scope, receive: Receive, send: Send, inner: ASGIApp
    ) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(path)
        # A hang (status 0) is a timeout as the caller sees it: the provider did the work,
        # the answer never came back in time. So is an answer lost on purpose.
        if fault is not None and (fault.lose_answer or fault.status == 0):
            await inner(scope, receive, _discard)  # done at the provider...
            await asyncio.sleep(fault.delay)  # ...and the answer never arrives
            await self.fault_response(fault.status or 504, None)(scope, receive, send)
            return
        if fault is not None:  # refused without doing anything
            await asyncio.sleep(fault.delay)
            await self.fault_response(fault.status, fault.retry_after)(scope, receive, send)
            return
        await inner(scope, receive, send)

    async def _ctl_app(self, request: Request) -> Response:
        body = await request.json()
        self.apps[body["client_id"]] = {
            "client_secret": body["client_secret"],
            "redirect_uris": list(body["redirect_uris"]),
        }
        return JSONResponse({"ok": True})

    async def _ctl_account(self, request: Request) -> Response:
        body = await request.json()
        self.accounts[body["id"]] = Account(
            body["id"],
            list(body.get("vehicles", [])),
            list(body.get("withheld_scopes", [])),
        )
        return JSONResponse({"ok": True})

    async def _ctl_fault(self, request: Request) -> Response:
        self.faults.append(Fault(**(await request.json())))
        return JSONResponse({"ok": True})

    async def _ctl_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return JSONResponse({"ok": True})

    async def _ctl_latency(self, request: Request) -> Response:
        self.latency = float((await request.json())["seconds"])
        return JSONResponse({"ok": True})

    async def _ctl_clock(self, request: Request) -> Response:
        self.clock_offset += float((await request.json())["advance"])
        return JSONResponse({"ok": True})

    async def _ctl_revoke(self, request: Request) -> Response:
        self.revoke_account(str((await request.json())["account"]))
        return JSONResponse({"ok": True})

    async def _ctl_asleep(self, request: Request) -> Response:
        body = await request.json()
        if body.get("asleep", True):
            self.asleep.add(str(body["vin"]))
        else:
            self.asleep.discard(str(body["vin"]))
        return JSONResponse({"ok": True})

    async def _ctl_readings(self, request: Request) -> Response:
        body = dict(await request.json())
        vin = str(body.pop("vin"))
        self.readings[vin] = Reading(**{**vars(self.reading(vin)), **body})
        return JSONResponse({"ok": True})

    def stats(self) -> dict[str, Any]:
        return {
            "exchanges": dict(self.exchanges),
            "exchange_attempts": self.exchange_attempts,
            "code_attempts": dict(self.code_attempts),
            "revocations": self.revocations,
            "refresh_attempts": self.refresh_attempts,
            "refreshes": self.refreshes,
            "expired_token_calls": self.expired_token_calls,
            "data_reads": self.data_reads,
            "requests": dict(self.requests),
            "connections": len(self.connections),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
        }

    async def _ctl_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _ctl_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _client_return(self, request: Request) -> Response:
        # Stands in for the client app's page in the local demo.
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in request.query_params.items()
        )
        return HTMLResponse(f"<h1>Back at the client app</h1><table>{rows}</table>")
