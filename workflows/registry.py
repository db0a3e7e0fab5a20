"""The one registry of workflow steps: for each step, the workflow function that runs it,
the name of the task that carries it, and what happens when its attempts are spent.

The worker builds its tasks from it, the after-commit dispatcher and every re-drive (the
sweep, the operators' tool, the ops endpoint, Flower) enqueue by it; nothing else spells
a step's task name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from settings import Settings
from store.db import Database
from workflows import data, provider_steps, tokens
from workflows.steps import Step

__all__ = ["REGISTRY", "StepSpec", "task_name"]


@dataclass(frozen=True)
class StepSpec:
    step: Step
    task: str  # the Celery task that carries it
    run: Callable[[Database, Settings, str], None]  # (db, settings, vehicle id)
    exhausted: Callable[[Database, str], None]  # after the last attempt: (db, vehicle id)


REGISTRY: dict[Step, StepSpec] = {
    spec.step: spec
    for spec in (
        StepSpec(
            Step.start_link,
            "cv.start_authorization",
            provider_steps.start_link,
            provider_steps.give_up,
        ),
        StepSpec(
            Step.validate,
            "cv.validate_authorization",
            provider_steps.validate,
            provider_steps.give_up,
        ),
        StepSpec(
            # the user asked for the removal: after the last try it is removed anyway
            Step.revoke,
            "cv.revoke_access",
            provider_steps.revoke,
            provider_steps.finish_removal,
        ),
        StepSpec(
            # the provider kept failing: still authorized, due again a little later
            Step.refresh,
            "cv.refresh_tokens",
            tokens.refresh,
            tokens.refresh_exhausted,
        ),
        StepSpec(Step.fetch, "cv.fetch_vehicle_data", data.fetch, data.fetch_exhausted),
    )
}


def task_name(step: str) -> str:
    return REGISTRY[Step(step)].task
