"""Thin tasks: load by id, run one workflow step, let the retry policy handle errors."""

from __future__ import annotations

from workers import runtime
from workers.app import app
from workers.relay import relay_once
from workers.retry import ProviderTask
from workflows import authorization

__all__ = ["relay_outbox", "start_authorization", "validate_authorization"]


def _give_up(vehicle_id: str) -> None:
    authorization.give_up(runtime.database(), vehicle_id)
    relay_outbox.delay()


@app.task(
    base=ProviderTask,
    bind=True,
    name="cv.validate_authorization",
    on_exhausted=staticmethod(_give_up),
)
def validate_authorization(self: ProviderTask, vehicle_id: str) -> None:
    authorization.validate(runtime.database(), runtime.settings(), vehicle_id)
    relay_outbox.delay()


@app.task(
    base=ProviderTask,
    bind=True,
    name="cv.start_authorization",
    on_exhausted=staticmethod(_give_up),
)
def start_authorization(self: ProviderTask, vehicle_id: str) -> None:
    authorization.start_link(runtime.database(), runtime.settings(), vehicle_id)
    relay_outbox.delay()


@app.task(name="cv.relay_outbox")
def relay_outbox() -> int:
    total = 0
    while True:
        n = relay_once(runtime.database(), runtime.events_redis())
        total += n
        if n < 500:
            return total
