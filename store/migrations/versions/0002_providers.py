"""every provider: Enode users and links, PKCE verifiers, shared app tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connected_vehicles") as batch:
        batch.add_column(sa.Column("provider_user_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("link_completed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("oauth_states") as batch:
        batch.add_column(sa.Column("code_verifier", sa.Text(), nullable=True))
    op.create_table(
        "app_tokens",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("app_tokens")
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_column("code_verifier")
    with op.batch_alter_table("connected_vehicles") as batch:
        batch.drop_column("link_completed_at")
        batch.drop_column("provider_user_id")
