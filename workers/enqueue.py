"""Sending work to the workers: by task name, after commit, never blocking for long.

:class:`Enqueuer` is the dispatcher of the API's and the worker's database handles
(workflows.dispatch): when a transaction commits it enqueues the steps it made due (by
the step registry), kicks the outbox relay, and wakes whoever waits for the vehicles it
changed (their ids on ``cv:changed``). It runs in the thread that committed: in the
API that is the request's one worker thread, never the event loop.

The relay kick is debounced: the first commit with events kicks at once; commits within
the next 50 ms are covered by one trailing kick sent when that window ends (a timer: no
broker countdown, which RabbitMQ's delayed delivery rounds to whole seconds). A lost kick
costs a few seconds, not an event: the sweep relays too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

import redis
from celery import Celery
from kombu.exceptions import OperationalError

import metrics
from providers.names import Provider
from workflows.dispatch import AfterCommit
from workflows.errors import ErrorCode
from workflows.events import CHANGED
from workflows.registry import task_name

__all__ = ["FAILED_HERE", "RELAY_TASK", "Enqueuer"]

log = logging.getLogger(__name__)

RELAY_TASK = "cv.relay_outbox"
# The vehicles the commits of the running task made `failed` (id, failure code): a step
# task sets it around its run (workers.retry.ProviderTask) and reads it after.
FAILED_HERE: ContextVar[list[tuple[str, str | None]] | None] = ContextVar(
    "cv_failed_here", default=None
)
# The labels of cv_authorizations_total: any other value is `other`.
_PROVIDERS = frozenset(p.value for p in Provider)
_CODES = frozenset(c.value for c in ErrorCode)
# A few quick tries: the intent is already committed (the sweep re-drives what is not
# sent), and a request must not hang on a broker that is down.
_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2}


class Enqueuer:
    def __init__(
        self,
        app: Celery,
        events: Callable[[], redis.Redis[bytes]],
        *,
        relay_debounce: float = 0.05,
    ) -> None:
        self.app = app
        self._events = events
        self._debounce = relay_debounce
        self._lock = threading.Lock()
        self._quiet_until = 0.0
        self._trailing = False
        self._warned = False

    def __call__(self, work: AfterCommit) -> None:
        """Each piece on its own: one that fails (logged) does not stop the others."""
        for vehicle_id, step in work.steps:
            try:
                name = task_name(step)
            except (KeyError, ValueError):
                log.error("vehicle %s is due an unknown step %r", vehicle_id, step)
                continue
            self.send(name, vehicle_id)
        if work.events:
            self.kick_relay()
        if work.changed:
            self.wake(work.changed)
        failed = FAILED_HERE.get()
        for vehicle_id, provider, status, code in work.decided:
            outcome = status if status == "authorized" else metrics.fold(code, _CODES)
            metrics.AUTHORIZATIONS.labels(metrics.fold(provider, _PROVIDERS), outcome).inc()
            if failed is not None and status == "failed":
                failed.append((vehicle_id, code))

    def send(self, name: str, *args: str) -> bool:
        try:
            self.app.send_task(name, args=list(args), retry=True, retry_policy=_RETRY)
            return True
        except (OperationalError, ConnectionError, OSError) as exc:
            log.warning("could not enqueue %s (broker unreachable: %s)", name, type(exc).__name__)
        except Exception:
            log.exception("could not enqueue %s", name)
        return False

    def kick_relay(self) -> None:
        """Kick the relay now, unless one was sent within the debounce window; then one
        more is sent when the window ends (from a timer), standing for every commit made
        in it. At most one kick per window and one trailing, whatever the commit rate."""
        with self._lock:
            now = time.monotonic()
            if now >= self._quiet_until:
                self._quiet_until = now + self._debounce
            elif not self._trailing:
                self._trailing = True
                timer = threading.Timer(self._quiet_until - now, self._trailing_kick)
                timer.daemon = True
                timer.start()
                return
            else:
                return  # the trailing kick, already due, stands for this commit
        if not self.send(RELAY_TASK):
            with self._lock:
                self._quiet_until = 0.0  # the next commit tries again

    def _trailing_kick(self) -> None:
        with self._lock:
            self._trailing = False
            self._quiet_until = time.monotonic() + self._debounce
        self.send(RELAY_TASK)

    def wake(self, vehicle_ids: list[str]) -> None:
        """Best effort: a waiter that misses its wake re-reads on its own safety timer."""
        try:
            pipe = self._events().pipeline(transaction=False)
            for vehicle_id in vehicle_ids:
                pipe.publish(CHANGED, vehicle_id)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("could not publish changes (%s)", type(exc).__name__)
        except ValueError as exc:  # no Redis for events (a RabbitMQ broker): say so once
            if not self._warned:
                self._warned = True
                log.warning("waiters are not woken: no events Redis (%s)", exc)
