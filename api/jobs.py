"""The one module through which `api` reaches the workers.

The API's database handle carries :data:`dispatcher`: what a transaction sets in motion
(a step made due, an event recorded) is enqueued when it commits, from the one
after-commit hook (workflows.dispatch), in the request's worker thread. The few jobs that
no transaction asks for are sent by name here, best effort.
"""

from __future__ import annotations

import logging
from functools import cache

from workers import runtime
from workers.app import app as celery_app
from workers.enqueue import Enqueuer

__all__ = [
    "broker_reachable",
    "deliver_webhooks",
    "dispatcher",
    "process_provider_webhook",
]

log = logging.getLogger(__name__)


@cache
def dispatcher() -> Enqueuer:
    """This process's dispatcher (for `open_database(..., dispatcher=…)`)."""
    return Enqueuer(celery_app, runtime.events_redis)


def process_provider_webhook(webhook_id: str) -> bool:
    return dispatcher().send("cv.process_provider_webhook", webhook_id)


def deliver_webhooks() -> bool:
    return dispatcher().send("cv.deliver_webhooks")


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
