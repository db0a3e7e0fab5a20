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
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
