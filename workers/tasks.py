"""Thin tasks: load by id, run one workflow step, let the retry policy handle errors.

Every task is declared by the registry (workflows.registry: its name, queue, whether it
sends events, its retry schedule) and made here with :func:`task`. Nothing here enqueues
by hand what a transaction set in motion (a step made due, a task asked for, the relay
kick after an event): the database handle's dispatcher does it after commit
(workflows.dispatch, workers.after_commit); what no transaction asks for goes through
the same enqueuer (``runtime.enqueuer``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task

from store.models import new_id
from workers import runtime
from workers.app import app
from workers.relay import Announcer, relay_once
from workers.retry import ProviderTask
from workflows import bulk, operators, provider_events, retention, sweep, webhook_delivery
from workflows.audit import Who
from workflows.registry import REGISTRY, TASKS, Job, StepSpec
from workflows.steps import Outcome, Step

__all__ = [
    "STEP_TASKS",
    "bulk_redrive",
    "deliver_webhook",
    "deliver_webhooks",
    "process_provider_webhook",
    "prune",
    "redrive",
    "relay_outbox",
    "sweep_workflows",
]

log = logging.getLogger(__name__)


def task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """The Celery task of registry entry `name`: its name and whether it sends events
    (its queue is celeryconfig's route, made from the same entry)."""
    spec = TASKS[name]
    return app.task(name=spec.name, send_events=spec.events, **options)  # type: ignore[no-any-return]


def _step_task(spec: StepSpec) -> Task:
    """The task that carries one workflow step: run it for the vehicle; the retry policy
    (ProviderTask) counts attempts and, when they are spent, calls `spec.exhausted`; a
    Failed outcome ends the task FAILURE."""

    def run(self: ProviderTask, vehicle_id: str) -> Outcome:
        return spec.run(runtime.database(), runtime.settings(), vehicle_id)

    run.__name__ = run.__qualname__ = spec.step.value
    run.__doc__ = f"Run the workflow step {spec.step.value!r} for a vehicle."

    def exhausted(vehicle_id: str) -> Outcome:
        return spec.exhausted(runtime.database(), vehicle_id)

    assert spec.retry is not None
    return task(
        spec.name,
        base=ProviderTask,
        bind=True,
        schedule=staticmethod(spec.retry),
        on_exhausted=staticmethod(exhausted),
        step=spec.step,
    )(run)


# The task of each workflow step, built from the one registry.
STEP_TASKS: dict[Step, Task] = {step: _step_task(spec) for step, spec in REGISTRY.items()}


# The vehicles' states into Celery's event stream, as their events are relayed.
_ANNOUNCER = Announcer(app)


@task(Job.relay_outbox)
def relay_outbox() -> int:
    total = 0
    while True:
        n = relay_once(runtime.database(), runtime.events_redis(), announce=_ANNOUNCER)
        total += n
        if n < 500:
            break
    if total:
        # DEBUG: under load the relay runs after every commit, and a line each time would
        # be most of the log (cv_outbox_lag_seconds says whether it keeps up; Celery's own lines
        # about it are DEBUG too: logconfig.QuietTasks)
        log.debug("relay: %d events published", total)
        runtime.enqueuer().send(Job.deliver_webhooks)
    return total


@task(Job.deliver_webhooks)
def deliver_webhooks() -> int:
    """Send what is due (beat, and after every relay): one task per delivery, so a slow
    endpoint holds up only its own."""
    due = webhook_delivery.take_due(runtime.database())
    enqueuer = runtime.enqueuer()
    for delivery_id in due:
        enqueuer.send(Job.deliver_webhook, delivery_id)
    if due:  # DEBUG for the same reason as the relay's (each delivery logs its outcome)
        log.debug("deliver_webhooks: %d deliveries due, sent", len(due))
    return len(due)


@task(Job.deliver_webhook)
def deliver_webhook(delivery_id: str) -> str:
    settings = runtime.settings()
    return webhook_delivery.attempt(
        runtime.database(),
        delivery_id,
        allow_private=settings.webhooks_allow_private,
        timeout=settings.webhook_timeout_seconds,
    )


@task(Job.process_provider_webhook)
def process_provider_webhook(webhook_id: str) -> str | None:
    return provider_events.process(runtime.database(), webhook_id)


@task(Job.sweep)
def sweep_workflows() -> dict[str, int]:
    """The periodic sweep (beat): re-drive stalled steps and provider webhooks not
    processed (enqueued when its transaction commits), expire abandoned authorizations,
    make token refreshes due, re-publish events the relay has not."""
    report = sweep.sweep(runtime.database(), runtime.settings())
    published = relay_outbox()
    if (
        report.redrive
        or report.expired
        or report.claims_interrupted
        or report.dead_workers
        or report.refreshes
        or report.bulk_runs
    ):
        log.info(
            "sweep: %d re-driven, %d expired, %d claims of dead workers interrupted, "
            "%d dead workers, %d refreshes due, %d bulk re-drives resumed",
            len(report.redrive),
            report.expired,
            report.claims_interrupted,
            report.dead_workers,
            report.refreshes,
            report.bulk_runs,
        )
    return {
        "redriven": len(report.redrive),
        "expired": report.expired,
        "claims_interrupted": report.claims_interrupted,
        "dead_workers": report.dead_workers,
        "refreshes": report.refreshes,
        "bulk_runs": report.bulk_runs,
        "published": published,
    }


@task(Job.prune)
def prune() -> dict[str, int]:
    """Retention (beat, hourly): delete what is older than CV_RETENTION_DAYS and done
    with, CV_RETENTION_BATCH rows per transaction, within half the task's time limit
    (what is left waits for the next pass)."""
    s = runtime.settings()
    report = retention.prune(
        runtime.database(),
        days=s.retention_days,
        batch=s.retention_batch,
        max_seconds=s.task_time_limit_seconds / 2,
    )
    counts = report.counts()
    # a pass that deleted nothing and left nothing (hourly) is DEBUG: a line when it acted
    did = any(counts.values()) or not report.complete
    log.log(
        logging.INFO if did else logging.DEBUG,
        "prune: %s deleted (older than %d days, 0: off)%s",
        ", ".join(f"{n} {table}" for table, n in counts.items()),
        s.retention_days,
        "" if report.complete else "; more left for the next pass",
    )
    return counts


@task(Job.redrive)
def redrive(vehicle_id: str, force: bool = False) -> dict[str, str | None]:
    """An operator's re-drive of a failed vehicle (e.g. from Flower:
    POST /api/task/async-apply/cv.redrive {"args": ["<id>"]})."""
    who = Who("flower (cv.redrive task)", "flower")
    with runtime.database().session() as session:  # its step is enqueued on commit
        vehicle = operators.redrive_in(session, runtime.settings(), who, vehicle_id, force=force)
        step = Step(vehicle.step) if vehicle.step else None
    return {"id": vehicle_id, "status": vehicle.status, "step": step}


@task(Job.bulk_redrive)
def bulk_redrive(run_id: str, token: str = "") -> str:
    """A slice of a bulk re-drive (workflows.bulk), paced; the next slice is a new job
    with the same lease token, so that a long run never holds a worker's slot, a stop is
    heard between vehicles, and one job at a time works on a run."""
    token = token or new_id()
    state = bulk.work(runtime.database(), runtime.settings(), run_id, token=token)
    if state == "running":
        runtime.enqueuer().send(Job.bulk_redrive, run_id, token)
    return state


@task(Job.noop)
def noop(*args: object) -> None:
    """Does nothing: `make bench` drains a queue of these to measure what the worker
    setup itself costs per task (the baseline of the end-to-end figure)."""
