"""Webhooks both ways: a client's endpoint that verifies what it gets (with the
`standardwebhooks` library) and the rows that feed it; providers' webhooks signed as
Enode and Smartcar sign them, and a tenant whose apps there have a webhook secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import Response

from harness.tenant import Tenant
from providers.fakes.serve import FakeServer
from providers.names import Provider
from store.db import Database
from store.models import WebhookDelivery, utcnow
from workflows import webhook_endpoints
from workflows.provider_credentials import set_provider_credentials

__all__ = [
    "APP_SECRET",
    "SECRET",
    "Receiver",
    "delivery",
    "endpoint_for",
    "hook",
    "sign",
]

# -- a client's endpoint ---------------------------------------------------------------------


@dataclass
class Receiver:
    """A client's endpoint: answers from a script, verifies and keeps what it got."""

    url: str = ""
    secret: str = ""
    answers: list[int] = field(default_factory=list)  # then 200
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        if self.delay:
            await asyncio.sleep(self.delay)
        payload = Webhook(self.secret).verify(raw, dict(request.headers))  # raises if forged
        self.received.append(
            {
                "id": request.headers["webhook-id"],
                "signature": request.headers["webhook-signature"],
                "payload": payload,
            }
        )
        status = self.answers.pop(0) if self.answers else 200
        await Response(status_code=status)(scope, receive, send)


def endpoint_for(db: Database, tenant: Tenant, receiver: Receiver, types: list[str]) -> str:
    with db.session() as session:
        endpoint = webhook_endpoints.create_endpoint(
            session, tenant.client_id, receiver.url, types, allow_private=True
        )
    receiver.secret = endpoint.secret
    return endpoint.id


def delivery(db: Database, endpoint_id: str, event_id: str = "evt-1") -> str:
    body = json.dumps({"type": "connected_vehicle.authorized", "timestamp": "t", "data": {}})
    with db.session() as session:
        row = WebhookDelivery(
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type="connected_vehicle.authorized",
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=utcnow(),
        )
        session.add(row)
        session.commit()
        return row.id


# -- providers' webhooks ---------------------------------------------------------------------

# The webhook secret, and the app's, of the tenant's apps at Enode and Smartcar.
SECRET = "provider-webhook-secret"
APP_SECRET = "app-1-secret"


def sign(provider: str, raw: bytes, secret: str = SECRET) -> dict[str, str]:
    if provider == "enode":
        digest = hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
        return {"x-enode-signature": f"sha1={digest}", "content-type": "application/json"}
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"sc-signature": digest, "content-type": "application/json"}


def hook(
    tenant: Tenant,
    fakes: dict[str, FakeServer],
    *,
    webhook_secret: str,
    app_secret: str,
) -> Tenant:
    """Give the tenant's apps at Enode and Smartcar (the providers that send webhooks) a
    webhook secret."""
    with tenant.db.session() as session:
        for name in ("Enode", "Smartcar"):
            set_provider_credentials(
                session,
                tenant.client_id,
                Provider(name),
                oauth_client_id="app-1",
                oauth_client_secret=app_secret,
                base_url=fakes[name].url,
                webhook_secret=webhook_secret,
            )
    return tenant
