"""What a committed transaction sets in motion, outside the database, each on its own:
the broker's enqueues (:class:`workers.enqueue.Enqueuer`), the waiters' wake-up
(:class:`Wakeups`: the changed vehicles' ids on ``cv:changed``) and the metrics
(:func:`count_decisions`). :func:`dispatcher` joins them for a process's database handle
(workflows.dispatch calls it after each commit, in the thread that committed)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from celery import Celery

import metrics
from providers.names import Provider
from workers.enqueue import Enqueuer
from workflows.dispatch import AfterCommit, Dispatcher, listeners
from workflows.errors import ErrorCode
from workflows.events import CHANGED

__all__ = ["Wakeups", "count_decisions", "dispatcher"]

log = logging.getLogger(__name__)

# The labels of cv_authorizations_total: any other value is `other`.
_PROVIDERS = frozenset(p.value for p in Provider)
_CODES = frozenset(c.value for c in ErrorCode)


class Wakeups:
    """Wakes whoever waits for the vehicles a commit changed. Best effort: a waiter that
    misses its wake re-reads on its own safety timer."""

    def __init__(self, events: Callable[[], redis.Redis[bytes]]) -> None:
        self._events = events
        self._warned = False

    def __call__(self, work: AfterCommit) -> None:
        if not work.changed:
            return
        try:
            pipe = self._events().pipeline(transaction=False)
            for vehicle_id in work.changed:
                pipe.publish(CHANGED, vehicle_id)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("could not publish changes (%s)", type(exc).__name__)
        except ValueError as exc:  # no Redis for events (a RabbitMQ broker): say so once
            if not self._warned:
                self._warned = True
                log.warning("waiters are not woken: no events Redis (%s)", exc)


def count_decisions(work: AfterCommit) -> None:
    """cv_authorizations_total: each vehicle a commit made authorized or failed."""
    for _, provider, status, code in work.decided:
        outcome = status if status == "authorized" else metrics.fold(code, _CODES)
        metrics.AUTHORIZATIONS.labels(metrics.fold(provider, _PROVIDERS), outcome).inc()


def dispatcher(app: Celery, events: Callable[[], redis.Redis[bytes]]) -> Dispatcher:
    """A process's after-commit dispatcher: enqueue, wake, count."""
    return listeners(Enqueuer(app), Wakeups(events), count_decisions)
