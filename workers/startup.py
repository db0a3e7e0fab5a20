"""Worker and beat refuse to start with a missing or wrong secret key, and say why: a
worker that starts without one fails every task it takes (the probe saw 175 in three
minutes), and a beat would set the sweep going on rows nobody can read. So they do with
a RabbitMQ broker and no Redis for events (the relay could publish nothing).

A worker on Redis also sizes its broker connection pool to its own pool of tasks."""

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
