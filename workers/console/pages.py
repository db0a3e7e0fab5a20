"""The console's pages (tornado handlers, in Flower's app, behind its login). Each reads
the database in a thread, never on Flower's event loop; each form carries Flower's XSRF
token (a cross-site POST is refused by Flower's own check)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from flower.views import BaseHandler
from sqlalchemy import select
from tornado import web
from tornado.ioloop import IOLoop

from providers.names import Provider
from store.models import ConnectedVehicle
from workflows import bulk, operators
from workflows.audit import Who
from workflows.errors import DomainError, ErrorCode
from workflows.fleet import (
    FleetFilter,
    count_by_code_and_provider,
    decode_cursor,
    encode_cursor,
    page_query,
    plain_columns,
)
from workflows.history import History, history, milliseconds
from workflows.machine import Status
from workflows.registry import STEP_TASKS
from workflows.steps import Step

__all__ = [
    "RedriveRunPage",
    "RedriveRunState",
    "RedrivesPage",
    "VehiclePage",
    "VehicleRedrive",
    "VehiclesPage",
    "login_of",
    "vehicle_tasks",
]

T = TypeVar("T")
PAGE = 50
FILTER_FIELDS = ("status", "code", "provider", "client", "step", "since", "until", "q")


def login_of(handler: Any) -> Who:
    """Who is acting: the Flower login (basic auth's user, or the OAuth user)."""
    header = handler.request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return Who(user, "flower")
    current = handler.current_user
    return Who(current if isinstance(current, str) else "flower login", "flower")


def _db() -> Any:
    from workers import runtime

    return runtime.database()


def _settings() -> Any:
    from workers import runtime

    return runtime.settings()


async def in_thread(fn: Callable[[], T]) -> T:
    return await IOLoop.current().run_in_executor(None, fn)


def when(moment: datetime | None) -> str:
    """A stored time as operators read it: UTC, to the second, and how long ago."""
    if moment is None:
        return "—"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    ago = (datetime.now(UTC) - moment).total_seconds()
    if ago < 90:
        rel = f"{ago:.0f}s ago"
    elif ago < 5400:
        rel = f"{ago / 60:.0f} min ago"
    elif ago < 172800:
        rel = f"{ago / 3600:.0f} h ago"
    else:
        rel = f"{ago / 86400:.0f} d ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({rel})"


def url_prefix(handler: Any) -> str:
    """Flower's --url_prefix as a path ("" when there is none)."""
    prefix = str(handler.application.options.url_prefix or "").strip("/")
    return f"/{prefix}" if prefix else ""


def short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def vehicle_tasks(events: Any, vehicle_id: str, limit: int = 20) -> list[Any]:
    """The step tasks of a vehicle Flower has heard of since it started, newest first."""
    found = []
    for _, task in events.state.tasks_by_time():
        if task.name in STEP_TASKS and vehicle_id in str(task.args or ""):
            found.append(task)
            if len(found) >= limit:
                break
    return found


class _Page(BaseHandler):  # type: ignore[misc]
    def page(self, name: str, status: int = 200, **kwargs: Any) -> None:
        self.set_status(status)
        self.render(
            name,
            active_tab="cv-redrives" if name.startswith("cv_redrive") else "cv-vehicles",
            when=when,
            short=short,
            milliseconds=milliseconds,
            prefix=self._prefix(),
            **kwargs,
        )

    def _prefix(self) -> str:
        return url_prefix(self)

    def filter_args(self) -> dict[str, str]:
        return {k: self.get_argument(k, "", escape=False) for k in FILTER_FIELDS}


def parse_filter(args: dict[str, str]) -> FleetFilter:
    return FleetFilter.parse(
        status=args.get("status"),
        code=args.get("code"),
        provider=args.get("provider"),
        client_id=args.get("client"),
        step=args.get("step"),
        since=args.get("since"),
        until=args.get("until"),
        search=args.get("q"),
    )


CHOICES = {
    "status": [s.value for s in Status],
    "code": [c.value for c in ErrorCode],
    "provider": [p.value for p in Provider],
    "step": [s.value for s in Step],
}


class VehiclesPage(_Page):
    """GET /cv/vehicles: the fleet by why it stands where it stands, with counts by
    failure code and provider, paged by cursor."""

    @web.authenticated
    async def get(self) -> None:
        args = self.filter_args()
        error = None
        rows: list[ConnectedVehicle] = []
        counts: list[Any] = []
        next_cursor = None
        try:
            f = parse_filter(args)
            cursor = decode_cursor(self.get_argument("cursor", "", escape=False))
        except DomainError as exc:
            error = exc.message
        else:
            # The counts are of failures (the index's order: status, code, provider);
            # for another status there is no failure code to count.
            failures = (
                f
                if f.status is not None
                else FleetFilter(**{**f.__dict__, "status": Status.failed})
            )

            def load() -> tuple[list[ConnectedVehicle], list[Any]]:
                with _db().session() as session:
                    query = page_query(f, cursor=cursor, limit=PAGE + 1).options(plain_columns())
                    found = list(session.execute(query).scalars())
                    counted = []
                    if failures.status is Status.failed:
                        counts = count_by_code_and_provider(failures)
                        counted = list(session.execute(counts).all())
                    session.expunge_all()
                return found, counted

            rows, counts = await in_thread(load)
            if len(rows) > PAGE:
                rows = rows[:PAGE]
                next_cursor = encode_cursor(rows[-1])
        query = {k: v for k, v in args.items() if v}
        self.page(
            "cv_vehicles.html",
            400 if error else 200,
            error=error,
            args=args,
            choices=CHOICES,
            rows=rows,
            counts=counts,
            total=sum(n for _, _, n in counts),
            query=query,
            next_url=("?" + urlencode({**query, "cursor": next_cursor})) if next_cursor else None,
            first_url="?" + urlencode(query),
            paged=bool(self.get_argument("cursor", "", escape=False)),
            # a bulk re-drive takes failed vehicles, and a filter that says which
            failed_filter=not error
            and args["status"] in ("", "failed")
            and any(k != "status" for k in query),
            urlencode=urlencode,
        )


def _vehicle(vehicle_id: str) -> tuple[ConnectedVehicle | None, History | None]:
    with _db().session() as session:
        stmt = select(ConnectedVehicle).options(plain_columns())
        row = session.execute(stmt.where(ConnectedVehicle.id == vehicle_id)).scalar_one_or_none()
        if row is None:
            return None, None
        session.expunge(row)
    return row, history(_db(), vehicle_id)


class VehiclePage(_Page):
    """GET /cv/vehicles/<id>: one vehicle and its history."""

    @web.authenticated
    async def get(self, vehicle_id: str) -> None:
        if len(vehicle_id) > 100:
            raise web.HTTPError(404)
        row, h = await in_thread(lambda: _vehicle(vehicle_id))
        if row is None or h is None:
            self.page("cv_missing.html", 404, what=f"No connected vehicle {vehicle_id}")
            return
        self.page(
            "cv_vehicle.html",
            v=row,
            h=h,
            tasks=vehicle_tasks(self.application.events, vehicle_id),
            outcome=None,
        )


class VehicleRedrive(_Page):
    """POST /cv/vehicles/<id>/redrive (reason, force with confirm_force): the vehicle's
    page again, with what happened."""

    @web.authenticated
    async def post(self, vehicle_id: str) -> None:
        force = self.get_body_argument("force", "") == "1"
        confirmed = self.get_body_argument("confirm_force", "") == "1"
        reason = self.get_body_argument("reason", "").strip() or None
        who = login_of(self)
        if force and not confirmed:
            ok, text = False, "force re-drives a failure that is not retryable: tick to confirm it"
        else:
            ok, text = await in_thread(lambda: redrive_one(who, vehicle_id, force, reason))
        row, h = await in_thread(lambda: _vehicle(vehicle_id))
        if row is None or h is None:
            self.page("cv_missing.html", 404, what=f"No connected vehicle {vehicle_id}")
            return
        self.page(
            "cv_vehicle.html",
            200 if ok else 409,
            v=row,
            h=h,
            tasks=vehicle_tasks(self.application.events, vehicle_id),
            outcome=(ok, text),
        )


def redrive_one(who: Who, vehicle_id: str, force: bool, reason: str | None) -> tuple[bool, str]:
    """In a thread: the audited re-drive; what became of it, in words."""
    from store.db import DatabaseAway

    try:
        vehicle = operators.redrive(_db(), _settings(), who, vehicle_id, force=force, reason=reason)
    except DomainError as exc:
        return False, exc.message
    except DatabaseAway:
        return False, "the database is unavailable for a moment: try again shortly"
    return True, f"now {vehicle.status}" + (
        f", step {vehicle.step}" if vehicle.step else ", waiting for its user's consent"
    )


class RedrivesPage(_Page):
    """GET /cv/redrives: the runs, newest first. POST: a dry run of the filter (the
    plan, and a form to run it), or the run (reason required; force confirmed)."""

    @web.authenticated
    async def get(self) -> None:
        self.page("cv_redrives.html", runs=await in_thread(lambda: bulk.runs(_db(), limit=50)))

    @web.authenticated
    async def post(self) -> None:
        args = self.filter_args()
        run_it = self.get_body_argument("run", "") == "1"
        force = self.get_body_argument("force", "") == "1"
        confirmed = self.get_body_argument("confirm_force", "") == "1"
        reason = self.get_body_argument("reason", "")
        error = None
        counted: dict[tuple[str | None, str], int] = {}
        fixed = {k: v for k, v in args.items() if v}
        try:
            f = parse_filter({**args, "status": "failed"})
            if args["status"] not in ("", "failed"):
                raise DomainError(
                    ErrorCode.BAD_USER_INPUT,
                    message=f"a re-drive takes failed vehicles only, not {args['status']}",
                )
            if run_it:
                if force and not confirmed:
                    raise DomainError(
                        ErrorCode.BAD_USER_INPUT,
                        message="force re-drives failures that are not retryable: "
                        "tick to confirm it",
                    )
                who = login_of(self)
                run = await in_thread(
                    lambda: bulk.start(_db(), f, who=who, reason=reason, force=force)
                )
                self.redirect(f"{self._prefix()}/cv/redrives/{run.id}", status=303)
                return
            counted = await in_thread(lambda: bulk.plan(_db(), f))
            # the run's form carries the filter as the dry run read it (times absolute):
            # the run takes what was counted, not what `2h` means a minute later
            fixed = _form_fields(f)
        except DomainError as exc:
            error = exc.message
            if run_it:  # show the plan again, with what is wrong
                try:
                    counted = await in_thread(lambda: bulk.plan(_db(), parse_filter(args)))
                except DomainError:
                    counted = {}
        self.page(
            "cv_redrive_plan.html",
            400 if error else 200,
            error=error,
            args=fixed,
            counted=sorted(counted.items(), key=lambda kv: -kv[1]),
            total=sum(counted.values()),
            reason=reason,
            rate=_settings().redrive_per_second,
        )


def _form_fields(f: FleetFilter) -> dict[str, str]:
    """A filter as the console's form fields carry it (times absolute, in UTC)."""
    names = {"client_id": "client", "search": "q"}
    return {names.get(k, k): v for k, v in f.words().items()}


class RedriveRunPage(_Page):
    """GET /cv/redrives/<id>: a run's progress and each vehicle's result."""

    @web.authenticated
    async def get(self, run_id: str) -> None:
        try:
            view = await in_thread(lambda: bulk.view(_db(), run_id, limit=500))
        except DomainError as exc:
            self.page("cv_missing.html", 404, what=exc.message)
            return
        self.page("cv_redrive_run.html", view=view, outcome=None)


class RedriveRunState(_Page):
    """POST /cv/redrives/<id>/stop or /resume."""

    @web.authenticated
    async def post(self, run_id: str, action: str) -> None:
        change = bulk.stop if action == "stop" else bulk.resume
        who = login_of(self)
        try:
            await in_thread(lambda: change(_db(), run_id, who=who))
        except DomainError as exc:
            self.page("cv_missing.html", 409, what=exc.message)
            return
        self.redirect(f"{self._prefix()}/cv/redrives/{run_id}", status=303)
