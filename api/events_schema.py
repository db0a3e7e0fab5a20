"""The GraphQL of events: the `connectedVehicle` subscription, and the client's webhook
endpoints (for the client's administrators: a token with `admin: true`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.schema import ConnectedVehicleType, admin_only, context_of
from store.models import ConnectedVehicle, OutboxEvent, WebhookEndpoint
from workflows import vehicles, webhooks
from workflows.clients import Principal

__all__ = ["Subscription", "WebhookMutation", "WebhookQuery"]


@strawberry.type(name="WebhookEndpoint")
class WebhookEndpointType:
    id: strawberry.ID
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    # Shown once: when the endpoint is made and when its secret is rotated.
    secret: str | None = None

    @classmethod
    def of(cls, e: WebhookEndpoint, *, with_secret: bool = False) -> WebhookEndpointType:
        return cls(
            id=strawberry.ID(e.id),
            url=e.url,
            event_types=list(e.event_types),
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            secret=e.secret if with_secret else None,
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    event_types: list[str] | None = None


@strawberry.input
class WebhookEndpointIdInput:
    id: strawberry.ID


@strawberry.type
class WebhookQuery:
    @strawberry.field(name="webhookEndpoints")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpointType]:
        who = await admin_only(info)
        rows = await context_of(info).run(
            lambda s: list(
                s.execute(
                    select(WebhookEndpoint).where(WebhookEndpoint.client_id == who.client_id)
                ).scalars()
            )
        )
        return [WebhookEndpointType.of(r) for r in rows]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(name="createWebhookEndpoint")
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> WebhookEndpointType:
        who = await admin_only(info)
        ctx = context_of(info)
        row = await ctx.run(
            lambda s: webhooks.create_endpoint(
                s,
                who.client_id,
                input.url,
                input.event_types,
                allow_private=ctx.settings.webhooks_allow_private,
            )
        )
        return WebhookEndpointType.of(row, with_secret=True)

    @strawberry.mutation(name="rotateWebhookEndpointSecret")
    async def rotate_webhook_endpoint_secret(
        self, info: Info, input: WebhookEndpointIdInput
    ) -> WebhookEndpointType:
        who = await admin_only(info)
        row = await context_of(info).run(
            lambda s: webhooks.rotate_secret(s, who.client_id, str(input.id))
        )
        return WebhookEndpointType.of(row, with_secret=True)

    @strawberry.mutation(name="deleteWebhookEndpoint")
    async def delete_webhook_endpoint(self, info: Info, input: WebhookEndpointIdInput) -> bool:
        who = await admin_only(info)
        await context_of(info).run(
            lambda s: webhooks.delete_endpoint(s, who.client_id, str(input.id))
        )
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription(name="connectedVehicle")
    async def connected_vehicle(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[ConnectedVehicleType, None]:
        """The vehicle now, then every change, in order. The changes are read from the
        outbox (the database is the truth), so none is missed or repeated, whichever
        worker or relay made it. A change wakes the read: the process's one listener on
        CHANGED (`api.wakeups`), shared by every subscription and waiting mutation, so an
        idle subscription holds no connection and reads nothing; a slow re-read covers a
        wake that was lost."""
        ctx = context_of(info)
        who = await ctx.principal()
        vehicle_id = str(id)
        async with ctx.wakeups.watch(vehicle_id) as changed:  # before reading: no gap
            row, seq = await ctx.run(lambda s: _now(s, who, vehicle_id))
            yield ConnectedVehicleType.of(row)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        changed.wait(), ctx.settings.subscription_recheck_seconds
                    )
                changed.clear()  # before the read: a change after it wakes the next wait
                changes = await ctx.run(
                    functools.partial(_changes, vehicle_id=vehicle_id, after=seq)
                )
                for change_seq, payload in changes:
                    seq = change_seq
                    yield ConnectedVehicleType.from_view(payload)


def _now(session: Session, who: Principal, vehicle_id: str) -> tuple[ConnectedVehicle, int]:
    row = vehicles.view_owned(session, who, vehicle_id)
    seq = session.execute(
        select(func.coalesce(func.max(OutboxEvent.seq), 0)).where(
            OutboxEvent.vehicle_id == vehicle_id
        )
    ).scalar_one()
    return row, int(seq)


def _changes(session: Session, vehicle_id: str, after: int) -> list[tuple[int, dict[str, Any]]]:
    """The vehicle's events after `after`. Events carry no authorization URL (it holds the
    OAuth state); the subscriber is the vehicle's owner, so a pending one's is read back
    here, decrypted only when some event says it is ready."""
    rows = session.execute(
        select(OutboxEvent.seq, OutboxEvent.payload)
        .where(OutboxEvent.vehicle_id == vehicle_id, OutboxEvent.seq > after)
        .order_by(OutboxEvent.seq)
    ).all()
    changes = [(int(seq), dict(payload)) for seq, payload in rows]
    if any(p.get("authorization_ready") for _, p in changes):
        url = session.execute(
            select(ConnectedVehicle.authorization_url).where(ConnectedVehicle.id == vehicle_id)
        ).scalar_one_or_none()
        for _, payload in changes:
            if payload.get("authorization_ready"):
                payload["authorization_url"] = url
    return changes
