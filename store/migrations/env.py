from __future__ import annotations

from alembic import context

from store.db import make_engine
from store.models import Base

url = context.config.attributes.get("database_url")
if url is None:  # the `alembic` command line, outside the service's tool
    from settings import get_settings

    url = get_settings().database_url

engine = make_engine(url)
with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        # SQLite's batch migrations copy a table and drop the old one: rows that refer to
        # it would trip the foreign keys. Off for the migration (outside any transaction,
        # where SQLite takes it), on again with the next connection.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
