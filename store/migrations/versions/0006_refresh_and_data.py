"""connected, not only authorized: a refresh due time, and the car's data snapshot

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refresh_due_at", _TS, nullable=True))
        batch_op.create_index(
            "ix_connected_vehicles_refresh_due",
            ["refresh_due_at"],
            postgresql_where=sa.text("refresh_due_at IS NOT NULL"),
            sqlite_where=sa.text("refresh_due_at IS NOT NULL"),
        )
        # A pending vehicle's time to live runs from when it became pending: a vehicle
        # reauthorized long after its creation is not expired at once.
        batch_op.add_column(sa.Column("pending_since", _TS, nullable=True))
        batch_op.drop_index("ix_connected_vehicles_waiting")
        batch_op.create_index(
            "ix_connected_vehicles_waiting",
            ["pending_since"],
            postgresql_where=sa.text("status = 'pending' AND step IS NULL"),
            sqlite_where=sa.text("status = 'pending' AND step IS NULL"),
        )
    op.execute(
        "UPDATE connected_vehicles SET pending_since = created_at WHERE status = 'pending'"
    )
    op.create_table(
        "vehicle_snapshots",
        sa.Column(
            "vehicle_id", sa.String(36), sa.ForeignKey("connected_vehicles.id"), primary_key=True
        ),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("fetched_at", _TS, nullable=True),
        sa.Column("fetch_requested_at", _TS, nullable=True),
        sa.Column("fetch_failed_at", _TS, nullable=True),
        sa.Column("fetch_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("vehicle_snapshots")
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.drop_index("ix_connected_vehicles_waiting")
        batch_op.create_index(
            "ix_connected_vehicles_waiting",
            ["created_at"],
            postgresql_where=sa.text("status = 'pending' AND step IS NULL"),
            sqlite_where=sa.text("status = 'pending' AND step IS NULL"),
        )
        batch_op.drop_index("ix_connected_vehicles_refresh_due")
        batch_op.drop_column("refresh_due_at")
        batch_op.drop_column("pending_since")
