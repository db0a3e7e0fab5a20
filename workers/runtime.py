"""Per-process resources of a worker: settings, the database, the events Redis.

Created on first use in the process that uses them (a prefork child), never inherited
across a fork: connections are not shared between processes.
"""

from __future__ import annotations

import os
from functools import cache

import redis

from settings import Settings, get_settings
from store.db import Database, open_database

__all__ = ["database", "events_redis", "settings"]


def settings() -> Settings:
    return get_settings()


@cache
def _database(pid: int) -> Database:
    s = settings()
    return open_database(s.database_url, s.secret_key.get_secret_value())


def database() -> Database:
    return _database(os.getpid())


@cache
def _events_redis(pid: int) -> redis.Redis[bytes]:
    return redis.Redis.from_url(settings().events_url)


def events_redis() -> redis.Redis[bytes]:
    return _events_redis(os.getpid())
