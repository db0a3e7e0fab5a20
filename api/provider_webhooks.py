"""``POST /webhooks/{provider}``: providers' webhooks. The signature is checked on the raw
body before anything is parsed; an unverified delivery is refused (401) and stored
nowhere; a verified one is stored, then processed by a job, so the answer comes at once
whatever the workers are doing."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import work
from api.errors import json_error
from api.ratelimit import RateLimits
from providers.names import Provider
from store.db import Database
from workflows import provider_events
from workflows.errors import DomainError

__all__ = ["provider_webhook"]


async def provider_webhook(request: Request) -> Response:
    db: Database = request.app.state.db
    rate_limits: RateLimits = request.app.state.rate_limits
    limited = await rate_limits.address(request, "provider-webhooks")
    if limited is not None:  # by source address, before the body is even verified
        return limited
    known = provider_events.signature_header(request.path_params["provider"])
    if known is None:
        return JSONResponse({"error": "no webhooks from this provider"}, status_code=404)
    provider, header_name = known
    raw = await request.body()
    try:
        return await _receive(db, provider, raw, request.headers.get(header_name))
    except DomainError as exc:  # the database is away: the provider sends it again later
        return json_error(exc)


async def _receive(db: Database, provider: Provider, raw: bytes, header: str | None) -> Response:
    client_id = await work.run(db, lambda s: provider_events.verify(s, provider, raw, header))
    if client_id is None:
        return JSONResponse({"error": "signature does not verify"}, status_code=401)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # (invalid UTF-8 is a ValueError too)
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)

    if not provider_events.is_delivery(provider, body):  # e.g. null, a number, []
        return JSONResponse({"error": "the body is no delivery of this provider"}, status_code=400)
    challenge = provider_events.challenge_of(provider, body)
    if challenge is not None:  # the provider checks the endpoint (Smartcar's VERIFY)
        answer = await work.run(
            db, lambda s: provider_events.challenge_answer(s, provider, client_id, challenge)
        )
        return JSONResponse({"challenge": answer})

    # (its processing is enqueued when it commits, in the worker thread of work.run)
    received = await work.run(
        db, lambda s: provider_events.receive(s, provider, client_id, raw, body)
    )
    return JSONResponse({"received": True, "duplicate": received.duplicate})
