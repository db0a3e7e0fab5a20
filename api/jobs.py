"""The one module through which `api` reaches the workers: it enqueues tasks by name.

Only after the transaction that asked for the work has committed: a worker that picks the
task up at once finds the row as the API left it.
"""

from __future__ import annotations

import logging

from kombu.exceptions import OperationalError

from workers.app import app as celery_app

__all__ = [
    "broker_reachable",
    "deliver_webhooks",
    "kick_relay",
    "process_provider_webhook",
    "run_step",
    "start_authorization",
    "validate_authorization",
]

log = logging.getLogger(__name__)

# A few quick tries: the intent is already committed, and a request must not hang on a
# broker that is down.
_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2}


def _send(name: str, *args: str) -> bool:
    try:
        celery_app.send_task(name, args=list(args), retry=True, retry_policy=_RETRY)
        return True
    except OperationalError as exc:
        log.warning("could not enqueue %s (broker unreachable: %s)", name, type(exc).__name__)
        return False


def validate_authorization(vehicle_id: str) -> bool:
    return _send("cv.validate_authorization", vehicle_id)


def start_authorization(vehicle_id: str) -> bool:
    return _send("cv.start_authorization", vehicle_id)


# The task of each workflow step, by name (workers.tasks.STEP_TASKS holds the same).
_STEP_TASKS = {
    "validate": "cv.validate_authorization",
    "start_link": "cv.start_authorization",
    "revoke": "cv.revoke_access",
}


def run_step(vehicle_id: str, step: str) -> bool:
    return _send(_STEP_TASKS[step], vehicle_id)


def process_provider_webhook(webhook_id: str) -> bool:
    return _send("cv.process_provider_webhook", webhook_id)


def deliver_webhooks() -> bool:
    return _send("cv.deliver_webhooks")


def kick_relay() -> bool:
    """Best effort: beat runs the relay every few seconds anyway."""
    return _send("cv.relay_outbox")


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
