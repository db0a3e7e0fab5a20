"""The one module through which `api` reaches the workers.

The API's database handle carries :func:`dispatcher`: what a transaction sets in motion
(a step made due, a task asked for, an event recorded) is enqueued when it commits, from
the one after-commit hook (workflows.dispatch), in the request's worker thread.
"""

from __future__ import annotations

from functools import cache

from workers import runtime
from workers.after_commit import dispatcher as after_commit
from workers.app import app as celery_app
from workflows.dispatch import Dispatcher

__all__ = ["broker_reachable", "dispatcher"]


@cache
def dispatcher() -> Dispatcher:
    """This process's after-commit dispatcher (for `open_database(..., dispatcher=…)`)."""
    return after_commit(celery_app, runtime.events_redis)


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
