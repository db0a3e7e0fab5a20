"""Shared fixtures: a PostgreSQL database and a Redis db of this run's own, a real Celery
worker, the fake Smartcar over HTTP on loopback, and the API in process.

The environment is set here, before any module of the service reads its settings.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get(
    "CV_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("CV_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# An odd db for this run (the end-to-end processes take the next one); CV_TEST_REDIS_DB
# picks it, so that two runs side by side do not share one.
REDIS_DB = int(os.environ.get("CV_TEST_REDIS_DB") or random.randrange(1, 14, 2))
DB_NAME = f"cv_test_{uuid.uuid4().hex[:10]}"
PG_URL = make_url(PG_ADMIN_URL).set(database=DB_NAME).render_as_string(hide_password=False)
SECRET_KEY = Fernet.generate_key().decode()

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
from harness.database import admin_execute  # noqa: E402
from harness.database import migrated_database as _migrated  # noqa: E402
from settings import Settings, get_settings  # noqa: E402
from store.db import Database  # noqa: E402

get_settings.cache_clear()

pytest_plugins = ["tests.fixtures"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


def migrated_database(url: str) -> Database:
    """A database at `url` migrated to the latest schema, with the shipped catalogue
    (the harness's, under this run's key)."""
    return _migrated(url, SECRET_KEY)


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


# Emptied after each test, children first; the catalogue stays.
TABLES = (
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "provider_webhooks",
    "oauth_states",
    "vehicle_snapshots",
    "outbox_events",
    "connected_vehicles",
    "provider_credentials",
    "app_tokens",
    "clients",
)


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
