"""nothing replayable in events: the authorization URL (it carries the OAuth state) out
of the outbox and of webhook bodies not yet sent

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# A URL in the JSON text (null ones are written `null`, never quoted).
_HAS_URL = '%"authorization_url": "%'


def _scrub(data: dict) -> bool:
    """Blank the URL wherever a payload holds one (the vehicle, or an event's `data`)."""
    changed = False
    for view in (data, data.get("data") if isinstance(data.get("data"), dict) else None):
        if isinstance(view, dict) and view.get("authorization_url"):
            view["authorization_url"] = None
            view["authorization_ready"] = view.get("status") == "pending"
            changed = True
    return changed


def upgrade() -> None:
    conn = op.get_bind()
    text_of = "CAST(payload AS TEXT)" if conn.dialect.name == "postgresql" else "payload"
    last = -1
    while True:  # in batches: an outbox can be large
        rows = conn.execute(
            sa.text(
                f"SELECT seq, payload FROM outbox_events WHERE seq > :last "
                f"AND {text_of} LIKE :has ORDER BY seq LIMIT 1000"
            ),
            {"last": last, "has": _HAS_URL},
        ).all()
        if not rows:
            break
        for seq, payload in rows:
            data = payload if isinstance(payload, dict) else json.loads(payload)
            if _scrub(data):
                conn.execute(
                    sa.text("UPDATE outbox_events SET payload = :p WHERE seq = :seq"),
                    {"p": json.dumps(data), "seq": seq},
                )
            last = seq
    rows = conn.execute(
        sa.text("SELECT id, body FROM webhook_deliveries WHERE status = 'pending' AND body LIKE :has"),
        {"has": _HAS_URL},
    ).all()
    for delivery_id, body in rows:
        data = json.loads(body)
        if _scrub(data):
            conn.execute(
                sa.text("UPDATE webhook_deliveries SET body = :b WHERE id = :id"),
                {"b": json.dumps(data), "id": delivery_id},
            )


def downgrade() -> None:
    """Nothing to restore: the URLs are not kept anywhere else in events."""
