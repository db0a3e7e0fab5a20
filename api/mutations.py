"""The GraphQL mutations of SPEC §3 (the seed API's names): each checks the caller,
calls one workflow function in a worker thread, and, where a job does the work, waits a
bounded time for its outcome (woken by the vehicle's change, never by polling)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.schema import ConnectedVehicleType, Context, context_of, wait_for
from providers.names import Provider, Scope
from store.models import ConnectedVehicle
from workflows import authorization, vehicles
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["Mutation"]


@strawberry.input
class CreateConnectedVehicleOptions:
    redirect_uri: str | None = None
    scope: list[Scope] | None = None


@strawberry.input
class CreateConnectedVehicleInput:
    vehicle_id: strawberry.ID
    provider: Provider
    label: str | None = None
    options: CreateConnectedVehicleOptions | None = None


@strawberry.input
class AuthorizeConnectedVehicleOptions:
    code: str | None = None


@strawberry.input
class AuthorizeConnectedVehicleInput:
    id: strawberry.ID
    options: AuthorizeConnectedVehicleOptions | None = None


@strawberry.input
class ReauthorizeConnectedVehicleInput:
    id: strawberry.ID
    options: CreateConnectedVehicleOptions | None = None


@strawberry.input
class RemoveConnectedVehicleInput:
    id: strawberry.ID


@strawberry.input
class UpdateConnectedVehicleInput:
    id: strawberry.ID
    label: str | None = None


async def _wait_for_vehicle(
    ctx: Context, vehicle_id: str, done: Callable[[ConnectedVehicle], bool]
) -> ConnectedVehicle:
    """The vehicle (as the API shows it) once `done`, or as it stands when the bounded
    wait runs out."""

    def read(s: Session) -> ConnectedVehicle:
        return vehicles.peek(s, vehicle_id)

    return await wait_for(ctx, vehicle_id, read, read, done)


async def _link_made(ctx: Context, row: ConnectedVehicle) -> ConnectedVehicle:
    """Where the provider makes the consent link (a job), the bounded wait for it."""
    if row.step != Step.start_link:
        return row
    return await _wait_for_vehicle(
        ctx, row.id, lambda v: v.authorization_url is not None or v.status != "pending"
    )


def _scopes(options: CreateConnectedVehicleOptions) -> list[Scope] | None:
    return [Scope(s) for s in options.scope] if options.scope is not None else None


@strawberry.type
class Mutation:
    @strawberry.mutation(name="createConnectedVehicle")
    async def create_connected_vehicle(
        self, info: Info, input: CreateConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = await ctx.principal()
        options = input.options or CreateConnectedVehicleOptions()
        create = functools.partial(
            authorization.create_connected_vehicle,
            settings=ctx.settings,
            who=who,
            vehicle_id=str(input.vehicle_id),
            provider=Provider(input.provider),
            label=input.label,
            redirect_uri=options.redirect_uri,
            scope=_scopes(options),
        )
        row = await ctx.run(lambda s: create(s))
        return ConnectedVehicleType.of(await _link_made(ctx, row))

    @strawberry.mutation(name="authorizeConnectedVehicle")
    async def authorize_connected_vehicle(
        self, info: Info, input: AuthorizeConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = await ctx.principal()
        code = input.options.code if input.options else None
        row = await ctx.run(lambda s: authorization.request_validation(s, who, str(input.id), code))
        if row.status == Status.pending:
            row = await _wait_for_vehicle(ctx, row.id, lambda v: v.status != Status.pending)
        if row.status == Status.failed:
            failure = ErrorCode(row.failure_code or ErrorCode.PROVIDER_REJECTED)
            raise DomainError(failure, provider=row.provider)
        return ConnectedVehicleType.of(row)

    @strawberry.mutation(name="reauthorizeConnectedVehicle")
    async def reauthorize_connected_vehicle(
        self, info: Info, input: ReauthorizeConnectedVehicleInput
    ) -> ConnectedVehicleType:
        """A deauthorized or failed vehicle back to `pending`, same id, a new consent."""
        ctx = context_of(info)
        who = await ctx.principal()
        options = input.options or CreateConnectedVehicleOptions()
        reauthorize = functools.partial(
            authorization.reauthorize_connected_vehicle,
            settings=ctx.settings,
            who=who,
            vehicle_id=str(input.id),
            redirect_uri=options.redirect_uri,
            scope=_scopes(options),
        )
        row = await ctx.run(lambda s: reauthorize(s))
        return ConnectedVehicleType.of(await _link_made(ctx, row))

    @strawberry.mutation(name="removeConnectedVehicle")
    async def remove_connected_vehicle(
        self, info: Info, input: RemoveConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = await ctx.principal()
        row = await ctx.run(lambda s: authorization.remove_connected_vehicle(s, who, str(input.id)))
        if row.step:  # the access is given back at the provider by a job
            row = await _wait_for_vehicle(ctx, row.id, lambda v: v.status != Status.pending_removal)
        return ConnectedVehicleType.of(row)

    @strawberry.mutation(name="updateConnectedVehicle")
    async def update_connected_vehicle(
        self, info: Info, input: UpdateConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = await ctx.principal()
        row = await ctx.run(lambda s: vehicles.update_label(s, who, str(input.id), input.label))
        return ConnectedVehicleType.of(row)
