"""The one registry of tasks: for each, its name, its queue, whether it shows in Flower
(sends task events), and its retry schedule; for a workflow step, also the function that
runs it and what happens when its attempts are spent.

The worker builds its tasks from it, ``celeryconfig`` its routes, the after-commit
dispatcher and every re-drive (the sweep, the operators' tool, the ops endpoint, Flower)
enqueue by it, the bench sends by it; nothing else spells a task's name. (dramatiq's
actor registry is the model: the actor carries its queue and its retries.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from providers.retry import RetryPolicy
from settings import Settings
from store.db import Database
from workflows import bulk, data, provider_steps, tokens, webhook_delivery
from workflows.steps import Outcome, Step

__all__ = ["REGISTRY", "STEP_TASKS", "TASKS", "Job", "Queue", "StepSpec", "TaskSpec", "task_name"]


class Queue(StrEnum):
    """Nothing slow stands in front of an authorization: a dead client endpoint or a long
    housekeeping pass waits in its own queue (the Procfile's `ops` worker serves them)."""

    steps = "cv"
    webhooks = "cv.webhooks"
    housekeeping = "cv.housekeeping"


class Job(StrEnum):
    """The tasks that carry no workflow step."""

    relay_outbox = "cv.relay_outbox"
    deliver_webhooks = "cv.deliver_webhooks"
    deliver_webhook = "cv.deliver_webhook"
    process_provider_webhook = "cv.process_provider_webhook"
    sweep = "cv.sweep"
    prune = "cv.prune"
    redrive = "cv.redrive"
    bulk_redrive = "cv.bulk_redrive"  # a slice of a bulk re-drive (workflows.bulk)
    noop = "cv.noop"


def _steps_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy.of(settings)


def _delivery_policy(settings: Settings) -> RetryPolicy:
    return webhook_delivery.DELIVERY


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: Queue
    events: bool  # sends task events: shown in Flower (housekeeping is hidden on purpose)
    # Its retry schedule (its attempts counted in the database), or None: not retried
    # (done again by the next beat or sweep, or by whoever asks again).
    retry: Callable[[Settings], RetryPolicy] | None = None


@dataclass(frozen=True)
class StepSpec(TaskSpec):
    step: Step = Step.validate
    # (db, settings, vehicle id): a Failed outcome when the run failed its vehicle
    run: Callable[[Database, Settings, str], Outcome] = provider_steps.validate
    # after the last attempt: (db, vehicle id)
    exhausted: Callable[[Database, str], Outcome] = provider_steps.give_up


def _step(
    step: Step,
    name: str,
    run: Callable[[Database, Settings, str], Outcome],
    exhausted: Callable[[Database, str], Outcome],
) -> StepSpec:
    return StepSpec(name, Queue.steps, True, _steps_policy, step, run, exhausted)


REGISTRY: dict[Step, StepSpec] = {
    spec.step: spec
    for spec in (
        _step(
            Step.start_link,
            "cv.start_authorization",
            provider_steps.start_link,
            provider_steps.give_up,
        ),
        _step(
            Step.validate,
            "cv.validate_authorization",
            provider_steps.validate,
            provider_steps.give_up,
        ),
        # the user asked for the removal: after the last try it is removed anyway
        _step(
            Step.revoke, "cv.revoke_access", provider_steps.revoke, provider_steps.finish_removal
        ),
        # the provider kept failing: still authorized, due again a little later
        _step(Step.refresh, "cv.refresh_tokens", tokens.refresh, tokens.refresh_exhausted),
        _step(Step.fetch, "cv.fetch_vehicle_data", data.fetch, data.fetch_exhausted),
    )
}
STEP_TASKS = frozenset(spec.name for spec in REGISTRY.values())

TASKS: dict[str, TaskSpec] = {
    **{spec.name: spec for spec in REGISTRY.values()},
    **{
        spec.name: spec
        for spec in (
            TaskSpec(Job.relay_outbox.value, Queue.housekeeping, events=False),
            TaskSpec(Job.deliver_webhooks.value, Queue.housekeeping, events=False),
            # one delivery attempt; its schedule lives on the delivery's row
            TaskSpec(
                Job.deliver_webhook.value, Queue.webhooks, events=False, retry=_delivery_policy
            ),
            TaskSpec(Job.process_provider_webhook.value, Queue.steps, events=True),
            TaskSpec(Job.sweep.value, Queue.housekeeping, events=False),
            TaskSpec(Job.prune.value, Queue.housekeeping, events=False),
            TaskSpec(Job.redrive.value, Queue.steps, events=True),
            # paced, beside new users' authorizations, never in front of them
            TaskSpec(Job.bulk_redrive.value, Queue.housekeeping, events=False),
            TaskSpec(Job.noop.value, Queue.steps, events=True),
        )
    },
}


def task_name(step: str) -> str:
    return REGISTRY[Step(step)].name


assert Job.bulk_redrive.value == bulk.JOB  # the bulk module names its job without us
