"""Operators' endpoints, behind a bearer token of their own (`CV_OPS_TOKEN`; unset, they
do not exist): re-drive a failed vehicle, replay a webhook delivery."""

from __future__ import annotations

import re
import secrets

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import work
from api.errors import json_error
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle
from workflows.authorization import redrive
from workflows.errors import DomainError
from workflows.webhook_endpoints import replay

__all__ = ["redrive_endpoint", "replay_endpoint"]


# Ids of this service's rows (UUIDs and the like): anything else is refused before the
# database sees it (a NUL, say, which PostgreSQL cannot even compare).
_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _allowed(request: Request, settings: Settings) -> Response | None:
    expected = settings.ops_token.get_secret_value()
    if not expected:
        return JSONResponse({"error": "not found"}, status_code=404)
    given = request.headers.get("authorization", "")
    if not secrets.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    if not _ID.fullmatch(request.path_params.get("id", "")):
        return JSONResponse({"error": "not a valid id"}, status_code=400)
    return None


async def redrive_endpoint(request: Request) -> Response:
    """``POST /ops/vehicles/{id}/redrive[?force=true]``: a failed vehicle back to work."""
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    refused = _allowed(request, settings)
    if refused is not None:
        return refused
    vehicle_id = request.path_params["id"]
    force = request.query_params.get("force", "").lower() in ("1", "true", "yes")

    def run(session: Session) -> ConnectedVehicle:
        return redrive(session, settings, vehicle_id, force=force)

    try:
        vehicle = await work.run(db, run)
    except DomainError as exc:
        return json_error(exc)
    return JSONResponse(
        {
            "id": vehicle.id,
            "status": vehicle.status,
            "step": vehicle.step,
            "authorization_url": vehicle.authorization_url,
        },
        status_code=202,
    )


async def replay_endpoint(request: Request) -> Response:
    """``POST /ops/webhook-deliveries/{id}/replay``: send a delivery again (same
    `webhook-id`), on a fresh schedule."""
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    refused = _allowed(request, settings)
    if refused is not None:
        return refused

    def run(session: Session) -> str:
        return replay(session, request.path_params["id"]).status

    try:
        status = await work.run(db, run)
    except DomainError as exc:
        return json_error(exc)
    return JSONResponse({"id": request.path_params["id"], "status": status}, status_code=202)
