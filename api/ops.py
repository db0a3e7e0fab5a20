"""Operators' endpoints, behind a bearer token of their own (`CV_OPS_TOKEN`; unset, they
do not exist): re-drive a failed vehicle, or failed vehicles in bulk by a filter (a dry
run first; then a run, followed, stopped and resumed), replay a webhook delivery. Every
action is audited; its operator is named by the `X-CV-Operator` header (else "ops
token")."""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import work
from api.errors import json_error
from settings import Settings
from store.db import Database, DatabaseAway
from store.models import ConnectedVehicle
from workflows import bulk, operators
from workflows.audit import Who
from workflows.errors import DomainError, ErrorCode
from workflows.fleet import FleetFilter
from workflows.webhook_endpoints import replay

__all__ = [
    "bulk_redrive_endpoint",
    "bulk_run_endpoint",
    "bulk_state_endpoint",
    "redrive_endpoint",
    "replay_endpoint",
]

T = TypeVar("T")
_OPERATOR = re.compile(r"[\w .@:+-]{1,100}")


def _who(request: Request) -> Who:
    name = request.headers.get("x-cv-operator", "").strip()
    return Who(name if _OPERATOR.fullmatch(name) else "ops token", "ops")


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
    if "id" in request.path_params and not _ID.fullmatch(request.path_params["id"]):
        return JSONResponse({"error": "not a valid id"}, status_code=400)
    return None


def _guard(request: Request) -> tuple[Settings, Database, Response | None]:
    """The app's settings and database, and the refusal (404, 401, 400) if any."""
    settings: Settings = request.app.state.settings
    return settings, request.app.state.db, _allowed(request, settings)


async def redrive_endpoint(request: Request) -> Response:
    """``POST /ops/vehicles/{id}/redrive[?force=true]``: a failed vehicle back to work."""
    settings, db, refused = _guard(request)
    if refused is not None:
        return refused
    vehicle_id = request.path_params["id"]
    force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
    who = _who(request)

    def run(session: Session) -> ConnectedVehicle:
        return operators.redrive_in(session, settings, who, vehicle_id, force=force)

    try:
        vehicle = await work.run(db, run)
    except DomainError as exc:
        audit = functools.partial(operators.refused, db, who, vehicle_id, exc, force=force)
        await anyio.to_thread.run_sync(audit)
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
    _settings, db, refused = _guard(request)
    if refused is not None:
        return refused

    def run(session: Session) -> str:
        return replay(session, request.path_params["id"]).status

    try:
        status = await work.run(db, run)
    except DomainError as exc:
        return json_error(exc)
    return JSONResponse({"id": request.path_params["id"], "status": status}, status_code=202)


def _bad(message: str) -> DomainError:
    return DomainError(ErrorCode.BAD_USER_INPUT, message=message)


async def _in_thread(fn: Callable[[], T]) -> T:
    """`fn` in a worker thread; the database away is a 503, as everywhere else."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except DatabaseAway as exc:
        raise work.ServiceUnavailable(done_unknown=exc.done_unknown) from exc


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise _bad("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("the body is a JSON object")
    return body


_FILTER_FIELDS = ("code", "provider", "client_id", "step", "since", "until", "search")


async def bulk_redrive_endpoint(request: Request) -> Response:
    """``POST /ops/redrives`` {"code", "provider", "client_id", "step", "since", "until",
    "search", "dry_run", "reason", "force", "confirm_force"}: a dry run answers the
    count by failure code and provider (200); a run needs a reason (and, with force,
    ``confirm_force: true``) and answers the run (202)."""
    _settings, db, refused = _guard(request)
    if refused is not None:
        return refused
    try:
        body = await _body(request)
        words: dict[str, str | None] = {}
        for k in _FILTER_FIELDS:
            value = body.get(k)
            if value is not None and not isinstance(value, str):
                raise _bad(f"the filter's fields ({', '.join(_FILTER_FIELDS)}) are strings")
            words[k] = value
        f = FleetFilter.parse(
            status="failed",
            code=words["code"],
            provider=words["provider"],
            client_id=words["client_id"],
            step=words["step"],
            since=words["since"],
            until=words["until"],
            search=words["search"],
        )
        if body.get("dry_run"):
            counted = await _in_thread(lambda: bulk.plan(db, f))
            by = [
                {"failure_code": code, "provider": provider, "count": n}
                for (code, provider), n in sorted(counted.items(), key=lambda kv: -kv[1])
            ]
            return JSONResponse({"count": sum(counted.values()), "by": by})
        force = body.get("force") is True
        if force and body.get("confirm_force") is not True:
            raise _bad("force re-drives failures that are not retryable: confirm it")
        reason = body.get("reason")
        who = _who(request)
        run = await _in_thread(
            lambda: bulk.start(
                db, f, who=who, reason=reason if isinstance(reason, str) else None, force=force
            )
        )
    except DomainError as exc:
        return json_error(exc)
    return JSONResponse({"id": run.id, "state": run.state, "total": run.total}, status_code=202)


async def bulk_run_endpoint(request: Request) -> Response:
    """``GET /ops/redrives/{id}``: the run's counts and each vehicle's result."""
    _settings, db, refused = _guard(request)
    if refused is not None:
        return refused
    try:
        view = await _in_thread(lambda: bulk.view(db, request.path_params["id"]))
    except DomainError as exc:
        return json_error(exc)
    return JSONResponse(view.as_json())


async def bulk_state_endpoint(request: Request) -> Response:
    """``POST /ops/redrives/{id}/stop`` and ``…/resume``."""
    _settings, db, refused = _guard(request)
    if refused is not None:
        return refused
    action = request.path_params["action"]
    if action not in ("stop", "resume"):
        return JSONResponse({"error": "not found"}, status_code=404)
    change = bulk.stop if action == "stop" else bulk.resume
    who = _who(request)
    try:
        run = await _in_thread(lambda: change(db, request.path_params["id"], who=who))
    except DomainError as exc:
        return json_error(exc)
    return JSONResponse({"id": run.id, "state": run.state})
