"""Sending work to the workers: by task name, after commit, never blocking for long.

:class:`Enqueuer` is the broker's listener of the API's and the worker's database handles
(workflows.dispatch, workers.after_commit): when a transaction commits it enqueues the
steps it made due and the tasks it asked for (by the task registry), and kicks the
outbox relay. It runs in the thread that committed: in the API that is the request's
one worker thread, never the event loop.

The relay kick is debounced: the first commit with events kicks at once; commits within
the next 50 ms are covered by one trailing kick sent when that window ends (a timer: no
broker countdown, which RabbitMQ's delayed delivery rounds to whole seconds). A lost kick
costs a few seconds, not an event: the sweep relays too.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from kombu.exceptions import OperationalError

from providers.retry import RetryPolicy
from workflows.dispatch import AfterCommit
from workflows.registry import Job, task_name

__all__ = ["BROKER_SEND", "Enqueuer"]

log = logging.getLogger(__name__)

# A few quick tries (after 0.1 s, then 0.3 s): the intent is already committed (the sweep
# re-drives what is not sent), and a request must not hang on a broker that is down.
BROKER_SEND = RetryPolicy(max_attempts=3, table=(0.1, 0.3), spread=0.0, inline_retries=0)


def _kombu(policy: RetryPolicy) -> dict[str, float]:
    """The schedule as kombu's publish retries it (it reconnects between tries): a
    start and a linear step."""
    first, second = policy.ceiling(1), policy.ceiling(2)
    return {
        "max_retries": policy.max_attempts - 1,
        "interval_start": first,
        "interval_step": second - first,
        "interval_max": second,
    }


_RETRY = _kombu(BROKER_SEND)


class Enqueuer:
    def __init__(self, app: Celery, *, relay_debounce: float = 0.05) -> None:
        self.app = app
        self._debounce = relay_debounce
        self._lock = threading.Lock()
        self._quiet_until = 0.0
        self._trailing = False

    def __call__(self, work: AfterCommit) -> None:
        """Each piece on its own: one that fails (logged) does not stop the others."""
        for vehicle_id, step in work.steps:
            try:
                name = task_name(step)
            except (KeyError, ValueError):
                log.error("vehicle %s is due an unknown step %r", vehicle_id, step)
                continue
            self.send(name, vehicle_id)
        for name, args in work.tasks:
            self.send(name, *args)
        if work.events:
            self.kick_relay()

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
        if not self.send(Job.relay_outbox):
            with self._lock:
                self._quiet_until = 0.0  # the next commit tries again

    def _trailing_kick(self) -> None:
        with self._lock:
            self._trailing = False
            self._quiet_until = time.monotonic() + self._debounce
        self.send(Job.relay_outbox)
