"""The client's webhook endpoints (SPEC §3): listed, made, their secret rotated, deleted.
For the client's administrators only (a token with `admin: true`): every field's
permission is :class:`~api.graphql.context.Admin`."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from api.graphql.context import Admin, context_of
from store.models import WebhookEndpoint
from workflows import webhook_endpoints
from workflows.webhook_endpoints import EVENT_TYPES

__all__ = ["WebhookMutation", "WebhookQuery"]


_TYPES = ", ".join(f"`{t}`" for t in EVENT_TYPES)


@strawberry.type(
    name="WebhookEndpoint",
    description="A URL of the client's that receives its vehicles' events (Standard Webhooks:"
    " headers `webhook-id`, the event's id, the same on every attempt; `webhook-timestamp`;"
    " `webhook-signature`, v1 HMAC-SHA256 with `secret`). A delivery that is not answered"
    " 2xx is tried again, eight attempts over about a day and a half.",
)
class WebhookEndpointType:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str = strawberry.field(description="Where events are POSTed.")
    event_types: list[str] = strawberry.field(
        description="The event types it receives; empty: every type."
    )
    enabled: bool = strawberry.field(
        description="Whether events are delivered to it; false once deleted, or after it"
        " answered 410 Gone."
    )
    disabled_reason: str | None = strawberry.field(
        description="Why it is disabled (`deleted`, or the 410 it answered); null while enabled."
    )
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (`whsec_…`), for verifying `webhook-signature`."
        " Shown once, in the answer of `createWebhookEndpoint` and"
        " `rotateWebhookEndpointSecret`; null everywhere else.",
    )

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


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(
        description="An https URL (at most 1,000 characters) that resolves to public"
        " addresses only: loopback, private, link-local and metadata addresses are refused"
        " (BAD_USER_INPUT, saying why), now and at every delivery."
    )
    event_types: list[str] | None = strawberry.field(
        default=None,
        description=f"The event types to receive, of {_TYPES}; left out or empty: every"
        " type. Another is BAD_USER_INPUT.",
    )


@strawberry.input(description="One of the client's webhook endpoints.")
class WebhookEndpointIdInput:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")


_ENDPOINT = strawberry.argument(description="The endpoint.")
_ADMINS = " For the client's administrators (a token with `admin: true`; else NOT_ALLOWED)."


@strawberry.type
class WebhookQuery:
    @strawberry.field(
        name="webhookEndpoints",
        permission_classes=[Admin],
        description="The client's webhook endpoints, deleted ones included (disabled)." + _ADMINS,
    )
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
    @strawberry.mutation(
        name="createWebhookEndpoint",
        permission_classes=[Admin],
        description="Register a URL to receive the client's events; the answer carries its"
        " `secret`, shown this once." + _ADMINS + " Errors: BAD_USER_INPUT (the URL, an"
        " unknown event type).",
    )
    async def create_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            CreateWebhookEndpointInput, strawberry.argument(description="The new endpoint.")
        ],
    ) -> WebhookEndpointType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(
            lambda s: webhook_endpoints.create_endpoint(
                s,
                who.client_id,
                input.url,
                input.event_types,
                allow_private=ctx.settings.webhooks_allow_private,
            )
        )
        return WebhookEndpointType.of(row, with_secret=True)

    @strawberry.mutation(
        name="rotateWebhookEndpointSecret",
        permission_classes=[Admin],
        description="A new signing secret, shown this once; for 24 hours deliveries carry"
        " a signature by each, so the receiver can switch over." + _ADMINS + " Errors:"
        " BAD_USER_INPUT (no such endpoint).",
    )
    async def rotate_webhook_endpoint_secret(
        self, info: Info, input: Annotated[WebhookEndpointIdInput, _ENDPOINT]
    ) -> WebhookEndpointType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(
            lambda s: webhook_endpoints.rotate_secret(s, who.client_id, str(input.id))
        )
        return WebhookEndpointType.of(row, with_secret=True)

    @strawberry.mutation(
        name="deleteWebhookEndpoint",
        permission_classes=[Admin],
        description="Stop delivering to an endpoint (it stays listed, disabled, reason"
        " `deleted`); true. Asking again is harmless." + _ADMINS + " Errors: BAD_USER_INPUT"
        " (no such endpoint).",
    )
    async def delete_webhook_endpoint(
        self, info: Info, input: Annotated[WebhookEndpointIdInput, _ENDPOINT]
    ) -> bool:
        ctx = context_of(info)
        who = ctx.caller
        await ctx.run(lambda s: webhook_endpoints.delete_endpoint(s, who.client_id, str(input.id)))
        return True
