"""retention: partial indexes for pruning published events, finished webhook deliveries
and processed provider webhooks, oldest first

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# name, table, column, predicate: each holds only the rows its question is about.
_INDEXES = (
    ("ix_outbox_published", "outbox_events", "published_at", "published_at IS NOT NULL"),
    ("ix_webhook_deliveries_finished", "webhook_deliveries", "updated_at", "status <> 'pending'"),
    ("ix_webhook_deliveries_pending_event", "webhook_deliveries", "event_id", "status = 'pending'"),
    (
        "ix_provider_webhooks_processed",
        "provider_webhooks",
        "processed_at",
        "processed_at IS NOT NULL",
    ),
)


def upgrade() -> None:
    for name, table, column, where in _INDEXES:
        op.create_index(
            name, table, [column], postgresql_where=sa.text(where), sqlite_where=sa.text(where)
        )


def downgrade() -> None:
    for name, table, _column, _where in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
