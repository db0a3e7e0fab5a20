"""Flower's task page, made truthful for workflow steps (SPEC §8): the page of a step's
task says what became of its vehicle since (its current status, read from the
database, and a link to its history in the console), and offers the Re-drive button
only while the vehicle is still failed. The button re-drives as the operators' command
does (audited, with the Flower login); a refusal says why in words an operator acts on
("not retryable (…): re-drive with force", "no longer failed: authorized since …"), and
the result page links to the vehicle and its new task.

Flower has no hook for either: ``workers.console.install`` puts these handlers in its
URL table before its app is built (``workers.flower``).
"""

from __future__ import annotations

import ast
import asyncio
import time
from typing import Any

from flower.utils.tasks import get_task_by_id
from flower.views import BaseHandler
from flower.views.tasks import TaskView
from tornado import web
from tornado.escape import xhtml_escape

from workflows.registry import STEP_TASKS

__all__ = ["RedriveHandler", "RedriveTaskView", "failed_vehicle", "step_vehicle"]

MARKER = b'<div class="detail-actions">'
PANEL_MARKER = b'<section class="detail-card task-details-card"'


def step_vehicle(task: Any) -> str | None:
    """The vehicle of a workflow step's task (its first argument), else None."""
    if task is None or task.name not in STEP_TASKS:
        return None
    try:
        args = ast.literal_eval(str(task.args))
    except (ValueError, SyntaxError):
        return None
    if isinstance(args, list | tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def failed_vehicle(task: Any) -> str | None:
    """The vehicle of a step task whose workflow failed, else None."""
    if task is None or task.state != "FAILURE":
        return None
    if "WorkflowFailed" not in str(task.exception or ""):
        return None
    return step_vehicle(task)


def _now_of(vehicle_id: str) -> tuple[str, str | None, Any] | None:
    """In a thread: the vehicle's status, failure code and when it last changed."""
    from sqlalchemy import select

    from store.models import ConnectedVehicle as CV
    from workers import runtime

    query = select(CV.status, CV.failure_code, CV.updated_at).where(CV.id == vehicle_id)
    with runtime.database().session() as session:
        row = session.execute(query).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


class RedriveTaskView(TaskView):  # type: ignore[misc]
    """Flower's task page, with the step's vehicle as it is now, and the Re-drive form
    while it is failed."""

    _cv_form: bytes | None = None
    _cv_panel: bytes | None = None

    @web.authenticated
    async def get(self, task_id: str) -> None:
        from workers.console.pages import in_thread, when

        task = get_task_by_id(self.application.events, task_id)
        vehicle_id = step_vehicle(task)
        if vehicle_id is not None:
            now = await in_thread(lambda: _now_of(vehicle_id))
            link = f"{self._prefix()}/cv/vehicles/{xhtml_escape(vehicle_id)}"
            if now is None:
                words = "removed since (no longer in the database)"
            else:
                status, code, changed = now
                words = f"now {status}{f' ({code})' if code else ''} since {when(changed)}"
            self._cv_panel = (
                '<section class="detail-card mb-3" id="cv-vehicle-now" aria-label="Its vehicle">'
                f'<p class="mb-0">Vehicle <a id="cv-vehicle-link" href="{link}">'
                f"<code>{xhtml_escape(vehicle_id)}</code></a>: "
                f'<span id="cv-vehicle-status">{xhtml_escape(words)}</span></p></section>'
            ).encode()
            if now is not None and now[0] == "failed" and failed_vehicle(task):
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
        from workers.console.pages import url_prefix

        return url_prefix(self)

    def finish(self, chunk: Any = None) -> Any:
        if isinstance(chunk, bytes):
            if self._cv_form is not None and MARKER in chunk:
                chunk = chunk.replace(MARKER, MARKER + self._cv_form, 1)
            if self._cv_panel is not None and PANEL_MARKER in chunk:
                chunk = chunk.replace(PANEL_MARKER, self._cv_panel + PANEL_MARKER, 1)
        return super().finish(chunk)


class RedriveHandler(BaseHandler):  # type: ignore[misc]
    """POST /cv/redrive/<task id>: re-drive the task's vehicle; a page says what
    happened, and links to the vehicle and its new task."""

    @web.authenticated
    async def post(self, task_id: str) -> None:
        from workers.console.pages import in_thread, login_of, redrive_one

        task = get_task_by_id(self.application.events, task_id)
        vehicle_id = failed_vehicle(task)
        if vehicle_id is None:
            self._page(
                400, "Nothing to re-drive", "This task is not a workflow step that failed.", None
            )
            return
        force = self.get_body_argument("force", "") == "1"
        who = login_of(self)
        began = time.time()
        ok, text = await in_thread(lambda: redrive_one(who, vehicle_id, force, None))
        new_task = await self._new_task(vehicle_id, began) if ok else None
        title = "Re-driven" if ok else "Not re-driven"
        self._page(200 if ok else 409, title, f"Vehicle {vehicle_id}: {text}", vehicle_id, new_task)

    async def _new_task(self, vehicle_id: str, since: float, wait: float = 3.0) -> Any:
        """The step task the re-drive enqueued, once Flower hears of it (a few seconds at
        most; the vehicle's page lists it later anyway)."""
        from workers.console.pages import vehicle_tasks

        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for task in vehicle_tasks(self.application.events, vehicle_id, limit=5):
                if (task.received or task.timestamp or 0) >= since - 1:
                    return task
            await asyncio.sleep(0.2)
        return None

    def _page(
        self, status: int, title: str, text: str, vehicle_id: str | None, new_task: Any = None
    ) -> None:
        from workers.console.pages import when

        self.set_status(status)
        self.render(
            "cv_task_redrive.html",
            active_tab="tasks",
            title=title,
            text=text,
            vehicle_id=vehicle_id,
            new_task=new_task,
            when=when,
        )
