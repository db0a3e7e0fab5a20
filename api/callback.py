"""``GET /oauth/callback``: the redirect target handed to providers.

It spends the OAuth state, hands the code to the validation job, and sends the user on
(303) to the client's ``redirect_uri`` with ``connected_vehicle_id`` and ``status`` (and
``error`` when the provider refused). A forged, replayed or expired state, or a callback
with neither code nor error, changes nothing and gets a 400 page.

A user comes here once, right after consenting: a database blip must not cost that
consent (SPEC §6). The short transaction is tried again over a few seconds; when the
database stays away, the page asks the user to reload (503, `Retry-After`, and it
reloads itself), and the reload completes the flow, because nothing was spent. A try
that lost its connection while committing may have spent the state: the next try then
takes a spent state as its own (`resumed`).
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from urllib.parse import urlencode

import anyio
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api import work
from api.ratelimit import RateLimits
from store.db import Database
from workflows.authorization import CallbackError, CallbackOutcome, receive_callback
from workflows.unreadable import Unreadable

__all__ = ["PAUSES", "oauth_callback"]

log = logging.getLogger(__name__)

# Seconds between the tries of one callback while the database is away (about 4 s in
# all, well within a browser's patience), before the page that asks for a reload.
PAUSES = (0.2, 0.5, 1.0, 2.0)
RELOAD_SECONDS = 5


def _page(title: str, text: str, status: int, *, head: str = "") -> HTMLResponse:
    body = f"<!doctype html>{head}<title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
    return HTMLResponse(body + f"<p>{html.escape(text)}</p>", status_code=status)


def _reload_page() -> HTMLResponse:
    page = _page(
        "Almost done",
        "The service is busy for a moment, and your consent is not lost. "
        f"This page reloads itself in {RELOAD_SECONDS} seconds; or reload it yourself.",
        503,
        head=f'<meta http-equiv="refresh" content="{RELOAD_SECONDS}">',
    )
    page.headers["retry-after"] = str(RELOAD_SECONDS)
    return page


async def _receive(db: Database, q: dict[str, str]) -> CallbackOutcome | None:
    """The outcome, once the database answered; None when it stayed away."""
    resumed = False
    for pause in (*PAUSES, None):
        receive: Callable[[Session], CallbackOutcome] = functools.partial(
            receive_callback,
            state=q.get("state"),
            code=q.get("code"),
            error=q.get("error"),
            resumed=resumed,
        )
        try:
            return await work.run(db, receive, tries=1)
        except work.ServiceUnavailable as exc:
            resumed = resumed or exc.done_unknown
            if pause is None:
                log.warning("oauth callback: the database stayed away; the user is asked to reload")
                return None
            await anyio.sleep(pause)
    return None  # pragma: no cover - the loop returns


async def oauth_callback(request: Request) -> Response:
    db: Database = request.app.state.db
    rate_limits: RateLimits = request.app.state.rate_limits
    limited = await rate_limits.address(request, "callback")
    if limited is not None:  # by source address: nobody is known here yet
        return limited
    try:
        outcome = await _receive(db, dict(request.query_params))
    except CallbackError as exc:
        text = str(exc)
        if "already used" in text:  # a reload after a lost answer lands here too
            text += ". If you have just consented, your car is being connected: return to the app."
        return _page("This link cannot be used", text, 400)
    except Unreadable:  # marked for operators (api.work)
        return _page(
            "This connection cannot be completed",
            "The service cannot read this vehicle's stored data. Its operators have been "
            "told; please contact the app you came from.",
            500,
        )
    if outcome is None:
        return _reload_page()

    params = {"connected_vehicle_id": outcome.vehicle_id, "status": outcome.status}
    if outcome.error is not None:
        params["error"] = outcome.error.value
    if not outcome.redirect_uri:
        return _page("Done", "You can close this window and return to the app.", 200)
    sep = "&" if "?" in outcome.redirect_uri else "?"
    return RedirectResponse(outcome.redirect_uri + sep + urlencode(params), status_code=303)
