"""Per-process resources of a worker: settings, the database, the events Redis, and the
dispatcher that enqueues what a committed transaction set in motion.

The Celery app is handed in by ``workers.app`` when it is made (:func:`bind`): this
module imports nothing of the app's, so no import runs back up to it.

Created on first use in the process that uses them (a prefork child), never inherited
across a fork: connections are not shared between processes. The database pool is sized
for the worker's concurrency (settings.db_pool_size and db_max_overflow): a step holds a
connection only inside a transaction, never across a provider call.
"""

from __future__ import annotations

import os
from functools import cache

import redis
from celery import Celery

import providers.http
import telemetry
from settings import Settings, get_settings
from store.db import Database, open_database
from workers.after_commit import dispatcher
from workers.enqueue import Enqueuer

__all__ = ["bind", "database", "enqueuer", "events_redis", "settings"]

_app: list[Celery] = []


def bind(app: Celery) -> None:
    """The app whose broker this process's dispatcher sends to."""
    _app[:] = [app]


def _the_app() -> Celery:
    assert _app, "workers.app binds its app on import"
    return _app[0]


def settings() -> Settings:
    return get_settings()


@cache
def _database(pid: int) -> Database:
    s = settings()
    providers.http.configure(max_connections=s.provider_max_connections)
    db = open_database(
        s.database_url,
        s.secret_key.get_secret_value(),
        dispatcher=dispatcher(_the_app(), events_redis),
        pool_size=s.db_pool_size,
        max_overflow=s.db_max_overflow,
    )
    telemetry.instrument_engine(db.engine)  # traced when an OTLP endpoint is set
    return db


def database() -> Database:
    return _database(os.getpid())


@cache
def _enqueuer(pid: int) -> Enqueuer:
    return Enqueuer(_the_app())


def enqueuer() -> Enqueuer:
    """Sends by name what no transaction asked for (the relay's follow-up, say)."""
    return _enqueuer(os.getpid())


@cache
def _events_redis(pid: int) -> redis.Redis[bytes]:
    return redis.Redis.from_url(settings().events_url)


def events_redis() -> redis.Redis[bytes]:
    return _events_redis(os.getpid())
