"""The request id travels with the work: a task published while a request (or a task)
is being served carries its id in the message's headers, and the worker serves the
task in that id's context, with the vehicle of a workflow step (its first argument).
So the lines a step logs, and the events it writes, name the request that set it going.

Worker and beat log through logconfig (JSON, or text with ``CV_LOG_FORMAT=text``)
instead of Celery's own set-up, Celery's routine lines about the housekeeping tasks at
DEBUG, and are traced when an OTLP endpoint is set (telemetry).
"""

from __future__ import annotations

from typing import Any

from celery.signals import (
    beat_init,
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
)

import logconfig
import telemetry
from settings import get_settings
from workflows.registry import STEP_TASKS, Job

__all__ = ["HEADER", "HOUSEKEEPING"]

# The message header that carries the request id.
HEADER = "cv_request_id"

# The periodic passes (beat's, and the relay kicked after commits): every few seconds,
# mostly with nothing to do, so Celery's lines about them go at DEBUG; each logs a line
# of its own when it did something (workers.tasks). Named one by one: an operator's job
# on the same queue keeps Celery's lines at INFO.
HOUSEKEEPING = frozenset(
    job.value for job in (Job.relay_outbox, Job.deliver_webhooks, Job.sweep, Job.prune)
)


def _logging(loglevel: Any = None, **_: Any) -> None:
    settings = get_settings()
    logconfig.configure(
        settings.log_format, loglevel or settings.log_level, quiet_tasks=HOUSEKEEPING
    )


def _trace_worker(**_: Any) -> None:
    telemetry.setup(get_settings(), "cv-worker")


def _trace_beat(**_: Any) -> None:
    telemetry.setup(get_settings(), "cv-beat")


def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = logconfig.current("request_id")
    if request_id is not None and headers is not None:
        headers.setdefault(HEADER, request_id)


def _enter(task: Any = None, args: Any = None, **_: Any) -> None:
    request_id = getattr(task.request, HEADER, None) if task is not None else None
    step = task is not None and task.name in STEP_TASKS
    vehicle_id = args[0] if step and args else None
    logconfig.begin(
        request_id=request_id if logconfig.well_formed(request_id) else None,
        vehicle_id=vehicle_id if isinstance(vehicle_id, str) else None,
    )


def _leave(**_: Any) -> None:
    logconfig.end()


# (Connected by call: Celery's decorators are untyped.)
setup_logging.connect(_logging)
worker_init.connect(_trace_worker)
worker_process_init.connect(_trace_worker)  # a prefork child: its own exporter thread
beat_init.connect(_trace_beat)
before_task_publish.connect(_carry_request_id)
task_prerun.connect(_enter)
task_postrun.connect(_leave)
