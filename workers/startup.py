"""Worker and beat refuse to start with a missing or wrong secret key, and say why: a
worker that starts without one fails every task it takes (the probe saw 175 in three
minutes), and a beat would set the sweep going on rows nobody can read. So they do with
a RabbitMQ broker and no Redis for events (the relay could publish nothing).

A worker on Redis also sizes its broker connection pool to its own pool of tasks, and
survives the broker's restart: its reconnect loop sleeps without blocking its other
greenlets (gevent), and a channel closed twice does not take the process with it."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import beat_init, worker_init
from sqlalchemy.exc import OperationalError

from settings import get_settings, is_redis
from store.crypto import SecretKeyError, use_key
from store.db import make_engine
from store.keys import check_key

__all__ = ["require_key"]

log = logging.getLogger(__name__)


def require_key() -> None:
    """The key is set, well formed, and decrypts what is stored (a database not reachable
    yet is not a reason to refuse: it is waited for, and readiness reports it)."""
    settings = get_settings()
    use_key(settings.secret_key.get_secret_value())
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        check_key(engine)
    except OperationalError:
        log.warning("the database is not reachable yet: the secret key is checked later")
    finally:
        engine.dispose()


def _cooperative_reconnect_sleep() -> None:
    """On gevent, kombu's broker reconnect loop must sleep as a greenlet does.

    kombu.utils.functional binds `from time import sleep` when `celery` itself is first
    imported, before the worker's `-P gevent` monkey-patches `time`: its retry loop
    (retry_over_time, the consumer's "Trying again in N seconds") then blocks the whole
    hub for 2, 4, 6… seconds per try while the broker is away. Every task in flight
    froze with it, database locks held, and the process stopped beating (seen in issue
    17's fault runs: the liveness file went stale exactly while the broker was away).
    The module's only unpatched reference; rebinding it to the patched sleep is exact."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if monkey.is_module_patched("time"):
        import time

        import kombu.utils.functional

        kombu.utils.functional.sleep = time.sleep  # type: ignore[attr-defined]


_cooperative_reconnect_sleep()  # imported by the worker after it patched (workers.app)


@worker_init.connect
def _guard_closed_redis_channel(sender: Any = None, **_: Any) -> None:
    """Redis: a channel used after its connection was closed raises a connection error
    (which every cleanup path ignores), not an AttributeError that kills the worker.

    After a lost broker connection Celery's consumer closes the connection twice:
    `Connection.collect()` detaches kombu's transport (`Transport.client = None`), then
    `Connection.close()` closes the task channel again. When the first close was cut
    short (a BRPOP in flight whose read raised: kombu/transport/redis.py Channel.close),
    the second restores the unacked messages through a pool rebuilt from
    `transport.client`: AttributeError "'NoneType' object has no attribute 'hostname'",
    not a connection error, and the worker exited ("Unrecoverable error": issue 17; 6 of
    11 tries in a reproducer, 3 of 3 in tests/faults/test_broker_restart.py). Upstream:
    celery/kombu#582, celery/kombu#970, celery/celery#10205; no kombu release fixes it
    (5.7.0): check again on upgrades (the test above fails without this).

    Nothing is lost: those messages stay in Redis's unacked set until the visibility
    timeout (or are gone with a Redis restarted empty), and the sweep re-drives their
    steps from the database. Late acks from tasks take the same path ("Couldn't ack")."""
    if not is_redis(str(sender.app.conf.broker_url)):
        return
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel = kombu_redis.Channel  # (SentinelChannel inherits it)
    connparams = channel._connparams
    if getattr(connparams, "cv_guarded", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("channel used after its connection was closed")
        return connparams(self, asynchronous=asynchronous)  # type: ignore[no-untyped-call]

    _connparams.cv_guarded = True  # type: ignore[attr-defined]
    channel._connparams = _connparams  # type: ignore[method-assign]


@worker_init.connect
def _size_broker_pool(sender: Any = None, **_: Any) -> None:
    # Every task acks its own message (acks_late), from its own greenlet on gevent, over
    # the consumer channel's pool of Redis connections. kombu's default of 10 lost acks
    # when more tasks than that ended at once ("Couldn't ack ... MaxConnectionsError"):
    # those messages stayed unacked and would have run again after the visibility
    # timeout. So: one connection per task that may ack at once, plus the consumer's own
    # (the fetch, the control channel, deliveries being recorded), opened only as needed.
    conf = sender.app.conf
    if not is_redis(str(conf.broker_url)):
        return
    options = dict(conf.broker_transport_options or {})
    wanted = int(sender.concurrency or 1) + 32
    options["max_connections"] = max(options.get("max_connections", 0), wanted)
    conf.broker_transport_options = options


@worker_init.connect
@beat_init.connect
def _refuse_without_key(sender: Any = None, **_: Any) -> None:
    problem = get_settings().events_problem()
    if problem is not None:
        print(f"refusing to start: {problem}", file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG
    try:
        require_key()
    except SecretKeyError as exc:
        # (Celery's logging is not set up this early: straight to stderr.)
        print(f"refusing to start: {exc}", file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG
