"""Every worker process that runs steps beats (workflows.liveness): the gevent or threads
worker itself, or each prefork child. A clean stop removes its row; a process killed
leaves it to go stale, and the sweep then takes back what the process held.

The beat runs in a thread of the process (a greenlet where gevent patched threading),
over a database connection of its own: a worker whose tasks hold every pooled
connection still beats. A beat that fails (the database away) is logged once and tried
again at the next; the sweep confirms a death only after a second look, so a worker
silenced by an outage, which beats again as soon as the database is back, is never taken
for dead. Claims are signed with the process's id only once a beat went through.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from celery.signals import worker_shutdown as worker_shutdown_signal
from sqlalchemy import Engine

from store.db import make_engine
from workers import runtime
from workflows import liveness

__all__ = ["start", "stop"]

log = logging.getLogger(__name__)

_stopping = threading.Event()
_thread: threading.Thread | None = None
_engine: Engine | None = None
_identity: str | None = None


def start(name: str = "") -> str:
    """Beat from this process from now on (once per process); its id."""
    global _thread, _engine, _identity
    if _identity is not None and _thread is not None:
        return _identity
    settings = runtime.settings()
    _identity = identity = liveness.new_identity(name)
    # one connection, never waited for long: not the tasks' pool
    _engine = make_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=5)
    _stopping.clear()
    # before any task: claims signed from here; a failure is said here, once
    failing = _beat_once(_engine, identity, failing=False)
    _thread = threading.Thread(
        target=_beat,
        args=(_engine, identity, settings.heartbeat_seconds, failing),
        name="cv-heartbeat",
    )
    _thread.daemon = True
    _thread.start()
    return identity


def _beat_once(engine: Engine, identity: str, *, failing: bool) -> bool:
    """One beat; whether it failed (logged when it starts or stops failing)."""
    try:
        liveness.beat(engine, identity)
    except Exception as exc:
        if not failing:
            log.warning("heartbeat: a beat failed (%s); trying again", type(exc).__name__)
        return True
    if failing:
        log.info("heartbeat: beating again")
    if not _stopping.is_set():
        liveness.set_process(identity)  # its claims are signed from now on
    return False


def _beat(engine: Engine, identity: str, every: float, failing: bool) -> None:
    while not _stopping.wait(every):
        failing = _beat_once(engine, identity, failing=failing)


def stop() -> None:
    """A clean stop: no more beats, and the row removed (its tasks have ended)."""
    global _thread, _engine, _identity
    identity, engine = _identity, _engine
    if identity is None or engine is None:
        return
    _stopping.set()
    liveness.set_process(None)
    if _thread is not None and _thread is not threading.current_thread():
        _thread.join(timeout=10)  # its beat in flight done: none after the row is gone
    try:
        liveness.forget(engine, identity)
    except Exception as exc:  # stale soon; the sweep removes it then
        log.warning("heartbeat: could not remove %s (%s)", identity, type(exc).__name__)
    engine.dispose()
    _thread = _engine = _identity = None


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
