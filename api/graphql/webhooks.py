"""The client's webhook endpoints (SPEC §3): listed, made, their secret rotated, deleted.
For the client's administrators only (a token with `admin: true`): every field's
permission is :class:`~api.graphql.context.Admin`."""

from __future__ import annotations

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from api.graphql.context import Admin, context_of
from store.models import WebhookEndpoint
from workflows import webhooks

__all__ = ["WebhookMutation", "WebhookQuery"]


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
    @strawberry.field(name="webhookEndpoints", permission_classes=[Admin])
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpointType]:
        ctx = context_of(info)
        who = ctx.caller
        rows = await ctx.run(
            lambda s: list(
                s.execute(
                    select(WebhookEndpoint).where(WebhookEndpoint.client_id == who.client_id)
                ).scalars()
            )
        )
        return [WebhookEndpointType.of(r) for r in rows]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(name="createWebhookEndpoint", permission_classes=[Admin])
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> WebhookEndpointType:
        ctx = context_of(info)
        who = ctx.caller
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

    @strawberry.mutation(name="rotateWebhookEndpointSecret", permission_classes=[Admin])
    async def rotate_webhook_endpoint_secret(
        self, info: Info, input: WebhookEndpointIdInput
    ) -> WebhookEndpointType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: webhooks.rotate_secret(s, who.client_id, str(input.id)))
        return WebhookEndpointType.of(row, with_secret=True)

    @strawberry.mutation(name="deleteWebhookEndpoint", permission_classes=[Admin])
    async def delete_webhook_endpoint(self, info: Info, input: WebhookEndpointIdInput) -> bool:
        ctx = context_of(info)
        who = ctx.caller
        await ctx.run(lambda s: webhooks.delete_endpoint(s, who.client_id, str(input.id)))
        return True
