"""one row that cannot be read fails alone: a vehicle is marked unreadable (and why), so
that periodic passes skip it and operators find it

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unreadable_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("unreadable_reason", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_connected_vehicles_unreadable",
            ["unreadable_at"],
            postgresql_where=sa.text("unreadable_at IS NOT NULL"),
            sqlite_where=sa.text("unreadable_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.drop_index("ix_connected_vehicles_unreadable")
        batch_op.drop_column("unreadable_reason")
        batch_op.drop_column("unreadable_at")
