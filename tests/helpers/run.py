"""This run's own PostgreSQL database, Redis db and secret key, chosen once per process.

Imported by tests/conftest.py before it sets the environment (CV_*) from these: so it
imports no module of the service at import time (they read their settings when first
imported).
"""

from __future__ import annotations

import os
import random
import uuid
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from store.db import Database

__all__ = [
    "DB_NAME",
    "PG_ADMIN_URL",
    "PG_URL",
    "REDIS_BASE",
    "REDIS_DB",
    "SECRET_KEY",
    "TABLES",
    "migrated_database",
]

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

# Emptied after each test, children first; the catalogue stays.
TABLES = (
    "step_attempts",
    "operator_actions",
    "redrive_items",
    "redrive_runs",
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


def migrated_database(url: str) -> Database:
    """A database at `url` migrated to the latest schema, with the shipped catalogue
    (the harness's, under this run's key)."""
    from harness.database import migrated_database as migrated  # reads the settings

    return migrated(url, SECRET_KEY)
