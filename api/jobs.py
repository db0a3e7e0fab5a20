"""The one module through which `api` reaches the workers: it enqueues tasks by name.

Only after the transaction that asked for the work has committed: a worker that picks the
task up at once finds the row as the API left it.
"""

from __future__ import annotations

from workers.app import app as celery_app

__all__ = ["broker_reachable", "kick_relay", "validate_authorization"]


def validate_authorization(vehicle_id: str) -> None:
    celery_app.send_task("cv.validate_authorization", args=[vehicle_id])


def kick_relay() -> None:
    celery_app.send_task("cv.relay_outbox")


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
