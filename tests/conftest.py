"""Shared fixtures: a PostgreSQL database and a Redis db of this run's own, a real Celery
worker, the fake Smartcar over HTTP on loopback, and the API in process.

The environment is set here, before any module of the service reads its settings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

# This run's database, Redis db and key (tests/helpers/run.py imports no service module).
from tests.helpers.run import (
    DB_NAME,
    PG_URL,
    REDIS_BASE,
    REDIS_DB,
    SECRET_KEY,
    TABLES,
    migrated_database,
)

os.environ.update(
    {
        "CV_DATABASE_URL": PG_URL,
        "CV_BROKER_URL": f"{REDIS_BASE}/{REDIS_DB}",
        "CV_SECRET_KEY": SECRET_KEY,
        "CV_PUBLIC_URL": "http://testserver",
        "CV_MUTATION_WAIT_SECONDS": "10",
        "CV_RETRY_MAX_ATTEMPTS": "3",
        "CV_RETRY_BASE_SECONDS": "0.05",
        "CV_RETRY_MAX_SECONDS": "0.5",
        "CV_PROVIDER_TIMEOUT_SECONDS": "2",
        "CV_FLOWER_BASIC_AUTH": "ops:test-password",
        # The tests' webhook receivers listen on loopback over http (test_egress.py
        # checks the rule itself).
        "CV_WEBHOOKS_ALLOW_PRIVATE": "true",
        # The suite is one client's burst after another: rates apply where a test asks
        # (tests/api/test_rate_limits.py).
        "CV_RATE_CLIENT_PER_MINUTE": "1000000",
        "CV_RATE_USER_PER_MINUTE": "1000000",
        "CV_RATE_ADDRESS_PER_MINUTE": "1000000",
    }
)

# The harness's (after the environment is set: importing it reads the settings).
from harness.database import admin_execute
from settings import Settings, get_settings
from store.db import Database

get_settings.cache_clear()

pytest_plugins = ["tests.fixtures"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def db(settings: Settings) -> Iterator[Database]:
    """This run's own PostgreSQL database, migrated and with the catalogue; dropped at the end."""
    admin_execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        database = migrated_database(PG_URL)
        yield database
        database.engine.dispose()
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """This run's Redis db, emptied at the end. (Not between tests: the session's worker
    keeps its queue bindings there.)"""
    import redis

    url = f"{REDIS_BASE}/{REDIS_DB}"
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def clean(db: Database, redis_url: str) -> Iterator[Database]:
    """The database, emptied after the test (the catalogue stays)."""
    yield db
    from sqlalchemy.exc import OperationalError

    for attempt in range(5):
        try:
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            return
        except OperationalError:  # a job the test set off (a relay) still holds a lock
            if attempt == 4:
                raise
            time.sleep(0.2)
