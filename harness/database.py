"""A PostgreSQL database of a run's own (created, migrated, dropped), on the server the
tests use: CV_TEST_POSTGRES_URL, by default the local `postgres` superuser on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store.catalogue import load_catalogue
from store.db import Database, open_database
from store.migrate import upgrade

__all__ = ["PG_ADMIN_URL", "admin_execute", "migrated_database", "postgres_database"]

PG_ADMIN_URL = os.environ.get(
    "CV_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def admin_execute(sql: str, admin_url: str = PG_ADMIN_URL) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def migrated_database(url: str, secret_key: str) -> Database:
    """The database at `url` migrated to the latest schema, with the shipped catalogue."""
    upgrade(url)
    database = open_database(url, secret_key)
    with database.session() as session:
        load_catalogue(session)
    return database


@contextmanager
def postgres_database(prefix: str = "cv_bench", admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """The URL of a new, empty database; dropped (its connections ended) on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_execute(f'CREATE DATABASE "{name}"', admin_url)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)
