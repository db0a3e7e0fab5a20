"""connectedVehicleList at constant cost: indexes on its filter and order

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        # (client_id, user_id, status) is a prefix of the status index below.
        batch_op.drop_index("ix_connected_vehicles_owner")
        batch_op.create_index(
            "ix_connected_vehicles_list", ["client_id", "user_id", "created_at", "id"]
        )
        batch_op.create_index(
            "ix_connected_vehicles_list_status",
            ["client_id", "user_id", "status", "created_at", "id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("connected_vehicles", schema=None) as batch_op:
        batch_op.drop_index("ix_connected_vehicles_list_status")
        batch_op.drop_index("ix_connected_vehicles_list")
        batch_op.create_index(
            "ix_connected_vehicles_owner", ["client_id", "user_id", "status"]
        )
