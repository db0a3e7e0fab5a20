"""Thin tasks: load by id, run one workflow step, let the retry policy handle errors."""

from __future__ import annotations

import logging

from celery import Task

from workers import runtime
from workers.app import app
from workers.relay import relay_once
from workers.retry import ProviderTask
from workflows import authorization, provider_events, provider_steps, sweep, webhooks
from workflows.steps import Step

__all__ = [
    "STEP_TASKS",
    "deliver_webhook",
    "deliver_webhooks",
    "process_provider_webhook",
    "redrive",
    "relay_outbox",
    "revoke_access",
    "start_authorization",
    "sweep_workflows",
    "validate_authorization",
]

log = logging.getLogger(__name__)


def _give_up(vehicle_id: str) -> None:
    provider_steps.give_up(runtime.database(), vehicle_id)
    relay_outbox.delay()


@app.task(
    base=ProviderTask,
    bind=True,
    name="cv.validate_authorization",
    on_exhausted=staticmethod(_give_up),
)
def validate_authorization(self: ProviderTask, vehicle_id: str) -> None:
    provider_steps.validate(runtime.database(), runtime.settings(), vehicle_id)
    relay_outbox.delay()


@app.task(
    base=ProviderTask,
    bind=True,
    name="cv.start_authorization",
    on_exhausted=staticmethod(_give_up),
)
def start_authorization(self: ProviderTask, vehicle_id: str) -> None:
    provider_steps.start_link(runtime.database(), runtime.settings(), vehicle_id)
    relay_outbox.delay()


def _remove_anyway(vehicle_id: str) -> None:
    provider_steps.finish_removal(runtime.database(), vehicle_id)
    relay_outbox.delay()


@app.task(
    base=ProviderTask,
    bind=True,
    name="cv.revoke_access",
    on_exhausted=staticmethod(_remove_anyway),
)
def revoke_access(self: ProviderTask, vehicle_id: str) -> None:
    provider_steps.revoke(runtime.database(), runtime.settings(), vehicle_id)
    relay_outbox.delay()


# The task that runs each workflow step.
STEP_TASKS: dict[Step, Task] = {
    Step.validate: validate_authorization,
    Step.start_link: start_authorization,
    Step.revoke: revoke_access,
}


@app.task(name="cv.relay_outbox")
def relay_outbox() -> int:
    total = 0
    while True:
        n = relay_once(runtime.database(), runtime.events_redis())
        total += n
        if n < 500:
            break
    if total:
        deliver_webhooks.delay()
    return total


@app.task(name="cv.deliver_webhooks")
def deliver_webhooks() -> int:
    """Send what is due (beat, and after every relay): one task per delivery, so a slow
    endpoint holds up only its own."""
    due = webhooks.take_due(runtime.database())
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


@app.task(name="cv.deliver_webhook")
def deliver_webhook(delivery_id: str) -> str:
    return webhooks.attempt(runtime.database(), delivery_id)


@app.task(name="cv.process_provider_webhook")
def process_provider_webhook(webhook_id: str) -> str | None:
    outcome = provider_events.process(runtime.database(), webhook_id)
    relay_outbox.delay()
    return outcome


@app.task(name="cv.sweep")
def sweep_workflows() -> dict[str, int]:
    """The periodic sweep (beat): re-drive stalled steps, expire abandoned authorizations,
    re-publish events the relay has not."""
    report = sweep.sweep(runtime.database(), runtime.settings())
    for vehicle_id, step in report.redrive:
        STEP_TASKS[step].delay(vehicle_id)
    for webhook_id in report.provider_webhooks:
        process_provider_webhook.delay(webhook_id)
    published = relay_outbox()
    if report.redrive or report.expired or report.claims_released:
        log.info(
            "sweep: %d re-driven, %d expired, %d claims released",
            len(report.redrive),
            report.expired,
            report.claims_released,
        )
    return {
        "redriven": len(report.redrive),
        "expired": report.expired,
        "claims_released": report.claims_released,
        "published": published,
    }


@app.task(name="cv.redrive")
def redrive(vehicle_id: str, force: bool = False) -> dict[str, str | None]:
    """An operator's re-drive of a failed vehicle (e.g. from Flower:
    POST /api/task/async-apply/cv.redrive {"args": ["<id>"]})."""
    with runtime.database().session() as session:
        vehicle = authorization.redrive(session, runtime.settings(), vehicle_id, force=force)
        step = Step(vehicle.step) if vehicle.step else None
    if step is not None:
        STEP_TASKS[step].delay(vehicle_id)
    relay_outbox.delay()
    return {"id": vehicle_id, "status": vehicle.status, "step": step}


@app.task(name="cv.noop")
def noop(*args: object) -> None:
    """Does nothing: `make bench` drains a queue of these to measure what the worker
    setup itself costs per task (the baseline of the end-to-end figure)."""
