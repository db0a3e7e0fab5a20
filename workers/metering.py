"""The workers' metrics, from Celery's signals (no task is changed for them): each step
attempt by outcome and its duration, each client webhook delivery attempt by outcome
(the task's result), each sweep's actions (its report's counts). Every name used as a
label comes from a fixed set: the step registry's, :data:`metrics.WEBHOOK_OUTCOMES`,
:data:`metrics.SWEEP_ACTION_NAMES`.

In multiprocess mode (``CV_METRICS_DIR``) a worker's start-up removes dead processes'
files and its shutdown marks it dead (``metrics.start``, ``metrics.stop``)."""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import Retry
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

import metrics
from workflows.registry import REGISTRY, Job
from workflows.steps import WorkflowFailed

__all__ = ["STEP_NAMES"]

# Task name → step name, for the tasks that carry a workflow step.
STEP_NAMES: dict[str, str] = {spec.name: spec.step.value for spec in REGISTRY.values()}
_DELIVER, _SWEEP = Job.deliver_webhook.value, Job.sweep.value
# A delivery's status after an attempt → the attempt's outcome.
_DELIVERY_OUTCOME = {
    "succeeded": "succeeded",
    "pending": "failed",  # another attempt follows, on the schedule
    "exhausted": "exhausted",
    "disabled": "disabled",
}
_STARTED = "_cv_metrics_started"


def _start(**_: Any) -> None:
    metrics.start()


def _stop(**_: Any) -> None:
    metrics.stop()


def _prerun(task: Any = None, **_: Any) -> None:
    if task is not None and task.name in STEP_NAMES:
        setattr(task.request, _STARTED, time.perf_counter())


def _postrun(task: Any = None, retval: Any = None, state: str | None = None, **_: Any) -> None:
    if task is None:
        return
    name = task.name
    step = STEP_NAMES.get(name)
    if step is not None:
        started = getattr(task.request, _STARTED, None)
        if started is not None:
            metrics.STEP_SECONDS.labels(step).observe(time.perf_counter() - started)
        metrics.STEP_ATTEMPTS.labels(step, _step_outcome(state, retval)).inc()
    elif name == _DELIVER and state == "SUCCESS":
        outcome = _DELIVERY_OUTCOME.get(retval if isinstance(retval, str) else "", "skipped")
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
    elif name == _SWEEP and state == "SUCCESS" and isinstance(retval, dict):
        metrics.SWEEPS.inc()
        for action in metrics.SWEEP_ACTION_NAMES:
            n = retval.get(action)
            if isinstance(n, int) and n > 0:
                metrics.SWEEP_ACTIONS.labels(action).inc(n)


for _signal, _handler in (
    (worker_init, _start),
    (worker_process_init, _start),  # a prefork child
    (worker_shutdown, _stop),
    (worker_process_shutdown, _stop),
    (task_prerun, _prerun),
    (task_postrun, _postrun),
):
    _signal.connect(_handler, weak=False)


def _step_outcome(state: str | None, retval: Any) -> str:
    """success; retry (a transient error, tried again later); failed (the vehicle ended
    failed: WorkflowFailed); error (anything else raised)."""
    if state == "SUCCESS":
        return "success"
    if state == "RETRY" or isinstance(retval, Retry):
        return "retry"
    if isinstance(retval, WorkflowFailed):
        return "failed"
    return "error"
