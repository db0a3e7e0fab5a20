"""The connected vehicles' and the catalogue's queries and mutations (SPEC §3, the seed
API's names). Each field's permission checks the caller first (:class:`Caller`); the
resolver calls one workflow function in a worker thread (the database layer is
synchronous), which enqueues after commit, and, where a job does the work, waits a
bounded time for its outcome (woken by the vehicle's change, never by polling)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.graphql.context import Caller, Context, context_of, wait_for
from api.graphql.types import (
    AuthorizeConnectedVehicleInput,
    ConnectedVehicleFilter,
    ConnectedVehicleType,
    CreateConnectedVehicleInput,
    CreateConnectedVehicleOptions,
    ReauthorizeConnectedVehicleInput,
    RemoveConnectedVehicleInput,
    UpdateConnectedVehicleInput,
    VehicleFilter,
    VehicleType,
)
from providers.names import Provider, Scope
from store.models import ConnectedVehicle
from workflows import authorization, vehicles
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["Mutation", "Query"]


@strawberry.type
class Query:
    @strawberry.field(name="connectedVehicle", permission_classes=[Caller])
    async def connected_vehicle(self, info: Info, id: strawberry.ID) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: vehicles.view_owned(s, who, str(id)))
        return ConnectedVehicleType.of(row)

    @strawberry.field(name="connectedVehicleList", permission_classes=[Caller])
    async def connected_vehicle_list(
        self,
        info: Info,
        filter: ConnectedVehicleFilter | None = None,
        size: int = 20,
        page: int = 1,
        after: str | None = None,
    ) -> list[ConnectedVehicleType]:
        ctx = context_of(info)
        who = ctx.caller
        status = filter.status.value if filter and filter.status else None
        key = vehicles.cursor_key(ctx.settings.secret_key.get_secret_value())
        list_owned = functools.partial(
            vehicles.list_owned, who=who, status=status, size=size, page=page, after=after
        )
        rows = await ctx.run(lambda s: list_owned(s, key=key))
        listed = []
        for row in rows:
            vehicle = ConnectedVehicleType.of(row)
            vehicle.cursor = vehicles.cursor_of(row, who, key)
            listed.append(vehicle)
        return listed

    @strawberry.field(permission_classes=[Caller])
    async def vehicle(self, info: Info, id: strawberry.ID) -> VehicleType:
        ctx = context_of(info)
        row = await ctx.run(lambda s: vehicles.catalogue_vehicle(s, str(id)))
        if row is None:
            raise DomainError(ErrorCode.VEHICLE_NOT_FOUND)
        return VehicleType.of(row)

    @strawberry.field(name="vehicleList", permission_classes=[Caller])
    async def vehicle_list(
        self, info: Info, filter: VehicleFilter | None = None, size: int = 20, page: int = 1
    ) -> list[VehicleType]:
        ctx = context_of(info)
        wanted = None
        if filter and filter.connect and filter.connect.providers:
            wanted = [p.value for p in filter.connect.providers]
        rows = await ctx.run(
            lambda s: vehicles.catalogue(s, providers=wanted, size=size, page=page)
        )
        return [VehicleType.of(r) for r in rows]


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
    @strawberry.mutation(name="createConnectedVehicle", permission_classes=[Caller])
    async def create_connected_vehicle(
        self, info: Info, input: CreateConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        options = input.options or CreateConnectedVehicleOptions()
        create = functools.partial(
            authorization.create_connected_vehicle,
            settings=ctx.settings,
            who=ctx.caller,
            vehicle_id=str(input.vehicle_id),
            provider=Provider(input.provider),
            label=input.label,
            redirect_uri=options.redirect_uri,
            scope=_scopes(options),
        )
        row = await ctx.run(create)
        return ConnectedVehicleType.of(await _link_made(ctx, row))

    @strawberry.mutation(name="authorizeConnectedVehicle", permission_classes=[Caller])
    async def authorize_connected_vehicle(
        self, info: Info, input: AuthorizeConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        code = input.options.code if input.options else None
        row = await ctx.run(lambda s: authorization.request_validation(s, who, str(input.id), code))
        if row.status == Status.pending:
            row = await _wait_for_vehicle(ctx, row.id, lambda v: v.status != Status.pending)
        if row.status == Status.failed:
            failure = ErrorCode(row.failure_code or ErrorCode.PROVIDER_REJECTED)
            raise DomainError(failure, provider=row.provider)
        return ConnectedVehicleType.of(row)

    @strawberry.mutation(name="reauthorizeConnectedVehicle", permission_classes=[Caller])
    async def reauthorize_connected_vehicle(
        self, info: Info, input: ReauthorizeConnectedVehicleInput
    ) -> ConnectedVehicleType:
        """A deauthorized or failed vehicle back to `pending`, same id, a new consent."""
        ctx = context_of(info)
        options = input.options or CreateConnectedVehicleOptions()
        reauthorize = functools.partial(
            authorization.reauthorize_connected_vehicle,
            settings=ctx.settings,
            who=ctx.caller,
            vehicle_id=str(input.id),
            redirect_uri=options.redirect_uri,
            scope=_scopes(options),
        )
        row = await ctx.run(reauthorize)
        return ConnectedVehicleType.of(await _link_made(ctx, row))

    @strawberry.mutation(name="removeConnectedVehicle", permission_classes=[Caller])
    async def remove_connected_vehicle(
        self, info: Info, input: RemoveConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: authorization.remove_connected_vehicle(s, who, str(input.id)))
        if row.step:  # the access is given back at the provider by a job
            row = await _wait_for_vehicle(ctx, row.id, lambda v: v.status != Status.pending_removal)
        return ConnectedVehicleType.of(row)

    @strawberry.mutation(name="updateConnectedVehicle", permission_classes=[Caller])
    async def update_connected_vehicle(
        self, info: Info, input: UpdateConnectedVehicleInput
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: vehicles.update_label(s, who, str(input.id), input.label))
        return ConnectedVehicleType.of(row)
