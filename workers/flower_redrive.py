"""Flower's Re-drive button: on the page of a workflow step's task that ended FAILURE
because its vehicle failed (`workers.retry.WorkflowFailed`), a form that re-drives the
vehicle, as `cv.redrive` and `POST /ops/vehicles/{id}/redrive` do, and a page with the
outcome. Both behind Flower's login (tornado's `authenticated`, checked by Flower's
handlers); a cross-site POST is refused by Flower's own check.

Flower has no hook for either: :func:`install` puts the handlers in its URL table before
its app is built (``workers.flower``).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from flower.utils.tasks import get_task_by_id
from flower.views import BaseHandler
from flower.views.tasks import TaskView
from tornado import web
from tornado.escape import xhtml_escape
from tornado.ioloop import IOLoop

from workflows.registry import STEP_TASKS

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from store.models import ConnectedVehicle

__all__ = ["RedriveHandler", "RedriveTaskView", "failed_vehicle", "install"]

MARKER = b'<div class="detail-actions">'


def failed_vehicle(task: Any) -> str | None:
    """The vehicle of a step task whose workflow failed, else None."""
    if task is None or task.name not in STEP_TASKS or task.state != "FAILURE":
        return None
    if "WorkflowFailed" not in str(task.exception or ""):
        return None
    try:
        args = ast.literal_eval(str(task.args))
    except (ValueError, SyntaxError):
        return None
    if isinstance(args, list | tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


class RedriveTaskView(TaskView):  # type: ignore[misc]
    """Flower's task page, with the Re-drive form for a failed workflow step."""

    _cv_form: bytes | None = None

    @web.authenticated
    def get(self, task_id: str) -> None:
        vehicle_id = failed_vehicle(get_task_by_id(self.application.events, task_id))
        if vehicle_id is not None:
            self._cv_form = (
                f'<form id="cv-redrive" method="post" action="{self._prefix()}/cv/redrive/'
                f'{xhtml_escape(task_id)}" style="display:inline">'
                f"{self.xsrf_form_html()}"
                '<label style="margin-right:.5em"><input type="checkbox" name="force"'
                ' value="1"> even if not retryable</label>'
                '<button class="btn btn-primary" id="task-redrive" type="submit">'
                "Re-drive</button></form>"
            ).encode()
        super().get(task_id)

    def _prefix(self) -> str:
        prefix = str(self.application.options.url_prefix or "").strip("/")
        return f"/{prefix}" if prefix else ""

    def finish(self, chunk: Any = None) -> Any:
        if self._cv_form is not None and isinstance(chunk, bytes) and MARKER in chunk:
            chunk = chunk.replace(MARKER, MARKER + self._cv_form, 1)
        return super().finish(chunk)


class RedriveHandler(BaseHandler):  # type: ignore[misc]
    """POST /cv/redrive/<task id>: re-drive the task's vehicle; a page says what happened
    (and nothing changes when there is nothing to re-drive)."""

    @web.authenticated
    async def post(self, task_id: str) -> None:
        task = get_task_by_id(self.application.events, task_id)
        vehicle_id = failed_vehicle(task)
        if vehicle_id is None:
            self._page(400, "Nothing to re-drive", "This task is not a workflow step that failed.")
            return
        force = self.get_body_argument("force", "") == "1"
        ok, text = await IOLoop.current().run_in_executor(None, _redrive, vehicle_id, force)
        title = "Re-driven" if ok else "Not re-driven"
        self._page(200 if ok else 409, title, f"Vehicle {vehicle_id}: {text}")

    def _page(self, status: int, title: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{xhtml_escape(title)} · Flower</title></head><body>"
            f"<h1 id='cv-outcome-title'>{xhtml_escape(title)}</h1>"
            f"<p id='cv-outcome'>{xhtml_escape(text)}</p>"
            "<p><a href='../../tasks'>Tasks</a></p></body></html>"
        )


def _redrive(vehicle_id: str, force: bool) -> tuple[bool, str]:
    """In a thread: the workflow's re-drive (its step is enqueued when it commits)."""
    from store.db import DatabaseAway
    from workers import runtime
    from workflows import authorization, unreadable
    from workflows.errors import DomainError

    def redrive(session: Session) -> ConnectedVehicle:
        return authorization.redrive(session, runtime.settings(), vehicle_id, force=force)

    try:
        vehicle = unreadable.run(runtime.database(), redrive)  # an unreadable row: marked
    except DomainError as exc:
        return False, f"{exc.code.value}: {exc.message}"
    except DatabaseAway:
        return False, "the database is unavailable for a moment: try again shortly"
    return True, f"now {vehicle.status}" + (f", step {vehicle.step}" if vehicle.step else "")


def install(handlers: list[Any]) -> None:
    """Flower's task page replaced by ours, and the re-drive endpoint added (idempotent)."""
    from tornado.web import url

    for i, handler in enumerate(handlers):
        if getattr(handler, "name", None) == "task" and handler.target is TaskView:
            handlers[i] = url(r"/task/(.+)", RedriveTaskView, name="task")
    if not any(getattr(h, "target", None) is RedriveHandler for h in handlers):
        # first: Flower's table ends with a catch-all 404
        handlers.insert(0, url(r"/cv/redrive/(.+)", RedriveHandler, name="cv-redrive"))
