"""operations at fleet scale: each step attempt recorded, operators' actions audited,
bulk re-drives and their per-vehicle results; the console's filter and search indexed

Expand only: new tables and indexes, nothing the previous release reads is changed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _serial() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "step_attempts",
        sa.Column("id", _serial(), primary_key=True, autoincrement=True),
        sa.Column("vehicle_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("provider_calls", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_step_attempts_vehicle", "step_attempts", ["vehicle_id", "id"])
    op.create_index("ix_step_attempts_ended", "step_attempts", ["ended_at"])
    op.create_table(
        "operator_actions",
        sa.Column("id", _serial(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("vehicle_id", sa.String(length=36), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("filter", sa.JSON(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
    )
    op.create_index("ix_operator_actions_at", "operator_actions", ["at"])
    op.create_index("ix_operator_actions_vehicle", "operator_actions", ["vehicle_id"])
    op.create_table(
        "redrive_runs",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("redriven", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "redrive_items",
        sa.Column("run_id", sa.String(length=36), sa.ForeignKey("redrive_runs.id"), nullable=False),
        sa.Column("vehicle_id", sa.String(length=36), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "vehicle_id"),
    )
    op.create_index(
        "ix_redrive_items_todo",
        "redrive_items",
        ["run_id", "vehicle_id"],
        postgresql_where=sa.text("result IS NULL"),
        sqlite_where=sa.text("result IS NULL"),
    )
    op.create_index("ix_redrive_items_vehicle", "redrive_items", ["vehicle_id"])
    op.create_index(
        "ix_connected_vehicles_fleet",
        "connected_vehicles",
        ["status", "failure_code", "provider", "updated_at", "id"],
    )
    op.create_index("ix_connected_vehicles_vin", "connected_vehicles", ["vin"])
    op.create_index(
        "ix_connected_vehicles_provider_vehicle", "connected_vehicles", ["provider_vehicle_id"]
    )
    op.create_index("ix_connected_vehicles_user", "connected_vehicles", ["user_id"])


def downgrade() -> None:
    for index in (
        "ix_connected_vehicles_user",
        "ix_connected_vehicles_provider_vehicle",
        "ix_connected_vehicles_vin",
        "ix_connected_vehicles_fleet",
    ):
        op.drop_index(index, table_name="connected_vehicles")
    op.drop_table("redrive_items")
    op.drop_table("redrive_runs")
    op.drop_table("operator_actions")
    op.drop_table("step_attempts")
