"""Every worker process that runs steps beats (workflows.liveness): the gevent or threads
worker itself, or each prefork child. A clean stop removes its row; a process killed
leaves it to go stale, and the sweep then takes back what the process held.

The beat runs in a thread of the process (a greenlet where gevent patched threading).
A beat that fails (the database away) is logged once and tried again at the next: a
worker is taken for dead only after CV_WORKER_DEAD_SECONDS without one, and the sweep
needs the database too.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from celery.signals import worker_shutdown as worker_shutdown_signal

from workers import runtime
from workflows import liveness

__all__ = ["start", "stop"]

log = logging.getLogger(__name__)

_stopping = threading.Event()
_thread: threading.Thread | None = None


def start(name: str = "") -> str:
    """Beat from this process from now on (once per process); its id."""
    global _thread
    identity = liveness.process()
    if identity is not None and _thread is not None:
        return identity
    identity = liveness.new_identity(name)
    every = runtime.settings().heartbeat_seconds
    try:  # the first beat before any task: a claim is never signed by a silent process
        liveness.beat(runtime.database(), identity)
    except Exception as exc:
        log.warning("heartbeat: first beat failed (%s); trying again", type(exc).__name__)
    liveness.set_process(identity)
    _stopping.clear()
    _thread = threading.Thread(target=_beat, args=(identity, every), name="cv-heartbeat")
    _thread.daemon = True
    _thread.start()
    return identity


def _beat(identity: str, every: float) -> None:
    failing = False
    while not _stopping.wait(every):
        try:
            liveness.beat(runtime.database(), identity)
            if failing:
                log.info("heartbeat: beating again")
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("heartbeat: a beat failed (%s)", type(exc).__name__)
            failing = True


def stop() -> None:
    """A clean stop: no more beats, and the row removed (nothing held is lost)."""
    global _thread
    identity = liveness.process()
    if identity is None:
        return
    _stopping.set()
    liveness.set_process(None)
    if _thread is not None and _thread is not threading.current_thread():
        _thread.join(timeout=10)  # its beat in flight done: none after the row is gone
    _thread = None
    try:
        liveness.forget(runtime.database(), identity)
    except Exception as exc:  # stale in a few seconds; the sweep removes it then
        log.warning("heartbeat: could not remove %s (%s)", identity, type(exc).__name__)


def _pool_of(sender: Any) -> str:
    """The worker's pool's kind (`prefork`, `gevent`, …): at worker_init its pool
    class may still be an alias."""
    from celery.concurrency import get_implementation

    try:
        pool = get_implementation(sender.pool_cls)
    except Exception:
        return ""
    return str(getattr(pool, "__module__", "")).rsplit(".", 1)[-1]


@worker_init.connect
def _worker_init(sender: Any = None, **_: Any) -> None:
    # gevent, eventlet, threads and solo run tasks in this very process; prefork in its
    # children (worker_process_init, below)
    if _pool_of(sender) != "prefork":
        start(str(getattr(sender, "hostname", "") or ""))


@worker_process_init.connect
def _child_init(**_: Any) -> None:
    start()


@worker_shutdown_signal.connect
@worker_process_shutdown.connect
def _shutdown(**_: Any) -> None:
    stop()
