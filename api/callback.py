"""``GET /oauth/callback``: the redirect target handed to providers.

It spends the OAuth state, hands the code to the validation job, and sends the user on
(303) to the client's ``redirect_uri`` with ``connected_vehicle_id`` and ``status`` (and
``error`` when the provider refused). A forged, replayed or expired state, or a callback
with neither code nor error, changes nothing and gets a 400 page.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.ratelimit import RateLimits
from store.db import Database
from workflows.authorization import CallbackError, CallbackOutcome, receive_callback

__all__ = ["oauth_callback"]


def _page(title: str, text: str, status: int) -> HTMLResponse:
    body = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
    return HTMLResponse(body + f"<p>{html.escape(text)}</p>", status_code=status)


async def oauth_callback(request: Request) -> Response:
    db: Database = request.app.state.db
    rate_limits: RateLimits = request.app.state.rate_limits
    limited = await rate_limits.address(request, "callback")
    if limited is not None:  # by source address: nobody is known here yet
        return limited
    q = request.query_params

    def receive() -> CallbackOutcome:
        with db.session() as session:
            return receive_callback(session, q.get("state"), q.get("code"), q.get("error"))

    try:
        outcome = await anyio.to_thread.run_sync(receive)
    except CallbackError as exc:
        return _page("This link cannot be used", str(exc), 400)

    params = {"connected_vehicle_id": outcome.vehicle_id, "status": outcome.status}
    if outcome.error is not None:
        params["error"] = outcome.error.value
    if not outcome.redirect_uri:
        return _page("Done", "You can close this window and return to the app.", 200)
    sep = "&" if "?" in outcome.redirect_uri else "?"
    return RedirectResponse(outcome.redirect_uri + sep + urlencode(params), status_code=303)
