"""The retention's clock and rows of every age (tests/workflows/test_retention.py, and
`cv prune` run as operators run it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from store.db import Database
from store.models import (
    OutboxEvent,
    ProviderWebhook,
    StepAttempt,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    new_id,
    utcnow,
)
from workflows.clients import create_client

__all__ = ["DAYS", "NOW", "OLD", "YOUNG", "Rows"]

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=utcnow().tzinfo)
DAYS = 30
OLD = NOW - timedelta(days=DAYS, hours=1)
YOUNG = NOW - timedelta(days=DAYS - 1)


class Rows:
    """Writes rows straight to the store: one client, one webhook endpoint."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.session() as session:
            self.client_id = create_client(session, "Acme").id
            endpoint = WebhookEndpoint(
                client_id=self.client_id, url="https://hooks.example", secret="whsec_x"
            )
            session.add(endpoint)
            session.commit()
            self.endpoint_id = endpoint.id

    def event(self, published_at: datetime | None, *, created_at: datetime = OLD) -> str:
        with self.db.session() as session:
            row = OutboxEvent(
                type="connected_vehicle.updated",
                vehicle_id="v1",
                client_id=self.client_id,
                payload={},
                created_at=created_at,
                published_at=published_at,
            )
            session.add(row)
            session.commit()
            return row.id

    def delivery(self, event_id: str, status: str, updated_at: datetime, attempts: int = 2) -> str:
        with self.db.session() as session:
            row = WebhookDelivery(
                endpoint_id=self.endpoint_id,
                event_id=event_id,
                event_type="connected_vehicle.updated",
                body="{}",
                status=status,
                attempts=attempts,
                created_at=updated_at - timedelta(days=1),
                updated_at=updated_at,
            )
            session.add(row)
            session.flush()
            for i in range(attempts):
                session.add(
                    WebhookAttempt(
                        delivery_id=row.id,
                        attempted_at=updated_at - timedelta(hours=i),
                        status_code=500,
                        latency_ms=10,
                    )
                )
            session.commit()
            return row.id

    def provider_webhook(self, received_at: datetime, processed_at: datetime | None) -> str:
        with self.db.session() as session:
            row = ProviderWebhook(
                provider="Enode",
                delivery_key=new_id(),
                client_id=self.client_id,
                body=[],
                received_at=received_at,
                processed_at=processed_at,
            )
            session.add(row)
            session.commit()
            return row.id

    def step_attempt(self, ended_at: datetime) -> int:
        with self.db.session() as session:
            row = StepAttempt(
                vehicle_id="v1",
                step="validate",
                attempt=1,
                started_at=ended_at - timedelta(seconds=1),
                ended_at=ended_at,
                outcome="retrying",
                error_code="PROVIDER_UNAVAILABLE",
                provider_calls=1,
                http_status=503,
                endpoint="/v2.0/vehicles",
            )
            session.add(row)
            session.commit()
            return row.id
