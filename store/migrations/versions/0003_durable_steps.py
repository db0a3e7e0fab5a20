"""durable workflows: steps with attempts as data; partial indexes for the sweeper

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_DUE = "step IS NOT NULL"
_WAITING = "status = 'pending' AND step IS NULL"
_CLAIMED = "code_claimed_at IS NOT NULL AND access_token IS NULL"


def _partial(name: str, table: str, column: str, where: str) -> None:
    op.create_index(
        name,
        table,
        [column],
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table("connected_vehicles") as batch:
        batch.add_column(sa.Column("step", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("step_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    # A validation asked for and not done is the step `validate`, due since then.
    op.execute(
        "UPDATE connected_vehicles SET step = 'validate', step_due_at = validation_requested_at"
        " WHERE validation_requested_at IS NOT NULL AND status = 'pending'"
    )
    with op.batch_alter_table("connected_vehicles") as batch:
        batch.drop_column("validation_requested_at")
    _partial("ix_connected_vehicles_due", "connected_vehicles", "step_due_at", _DUE)
    _partial("ix_connected_vehicles_waiting", "connected_vehicles", "created_at", _WAITING)
    _partial("ix_connected_vehicles_claimed", "connected_vehicles", "code_claimed_at", _CLAIMED)
    op.drop_index("ix_outbox_unpublished", table_name="outbox_events")
    _partial("ix_outbox_unpublished", "outbox_events", "seq", "published_at IS NULL")


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox_events")
    op.create_index("ix_outbox_unpublished", "outbox_events", ["published_at", "seq"])
    for name in ("due", "waiting", "claimed"):
        op.drop_index(f"ix_connected_vehicles_{name}", table_name="connected_vehicles")
    with op.batch_alter_table("connected_vehicles") as batch:
        batch.add_column(
            sa.Column("validation_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.drop_column("last_error")
        batch.drop_column("attempts")
        batch.drop_column("step_due_at")
        batch.drop_column("step")
