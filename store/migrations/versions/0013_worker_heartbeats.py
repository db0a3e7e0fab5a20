"""liveness: worker processes beat in worker_heartbeats, and a code's claim names the
process spending it, so the sweep tells a dead worker's claim from a live one

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.String(length=200), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suspected_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_claimed_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.drop_column("code_claimed_by")
    op.drop_table("worker_heartbeats")
