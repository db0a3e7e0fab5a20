"""The connected vehicles' and the catalogue's queries and mutations (SPEC §3, the seed
API's names). Each field's permission checks the caller first (:class:`Caller`); the
resolver calls one workflow function in a worker thread (the database layer is
synchronous), which enqueues after commit, and, where a job does the work, waits a
bounded time for its outcome (woken by the vehicle's change, never by polling)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.graphql.context import Caller, Context, context_of, wait_for
from api.graphql.inputs import (
    AFTER,
    PAGE,
    SIZE,
    VEHICLE_ID,
    AuthorizeConnectedVehicleInput,
    ConnectedVehicleFilter,
    CreateConnectedVehicleInput,
    CreateConnectedVehicleOptions,
    ReauthorizeConnectedVehicleInput,
    RemoveConnectedVehicleInput,
    UpdateConnectedVehicleInput,
    VehicleFilter,
)
from api.graphql.types import ConnectedVehicleType, VehicleType
from providers.names import Provider, Scope
from store.models import ConnectedVehicle
from workflows import authorization, vehicles
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["Mutation", "Query"]


_CATALOGUE_ID = strawberry.argument(description="The catalogue id, e.g. `tesla-model-3`.")
_STATUS_FILTER = strawberry.argument(description="By status; null: every vehicle.")
_PROVIDER_FILTER = strawberry.argument(description="By provider; null: every vehicle.")

# What a mutation answers when its job is slow, said once for each that waits.
_WAITS = (
    " Waits a bounded time (setting CV_MUTATION_WAIT_SECONDS) for the job; when that runs"
    " out the vehicle is returned as it stands, and the outcome follows by subscription"
    " and webhook."
)


@strawberry.type
class Query:
    @strawberry.field(
        name="connectedVehicle",
        permission_classes=[Caller],
        description="One of the caller's connected vehicles. Errors:"
        " CONNECTED_VEHICLE_NOT_FOUND (none with this id for this client and user),"
        " CONNECTED_VEHICLE_UNREADABLE.",
    )
    async def connected_vehicle(
        self, info: Info, id: Annotated[strawberry.ID, VEHICLE_ID]
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: vehicles.view_owned(s, who, str(id)))
        return ConnectedVehicleType.of(row)

    @strawberry.field(
        name="connectedVehicleList",
        permission_classes=[Caller],
        description="The caller's connected vehicles, oldest first, a page at a time: by"
        " `page`, or by cursor (`after`) for a large fleet. A page shorter than `size` is"
        " the last. Errors: BAD_USER_INPUT (`size`, `page`, `after`).",
    )
    async def connected_vehicle_list(
        self,
        info: Info,
        filter: Annotated[ConnectedVehicleFilter | None, _STATUS_FILTER] = None,
        size: Annotated[int, SIZE] = 20,
        page: Annotated[int, PAGE] = 1,
        after: Annotated[str | None, AFTER] = None,
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

    @strawberry.field(
        permission_classes=[Caller],
        description="One vehicle of the catalogue. Errors: VEHICLE_NOT_FOUND.",
    )
    async def vehicle(self, info: Info, id: Annotated[strawberry.ID, _CATALOGUE_ID]) -> VehicleType:
        ctx = context_of(info)
        row = await ctx.run(lambda s: vehicles.catalogue_vehicle(s, str(id)))
        if row is None:
            raise DomainError(ErrorCode.VEHICLE_NOT_FOUND)
        return VehicleType.of(row)

    @strawberry.field(
        name="vehicleList",
        permission_classes=[Caller],
        description="The catalogue of EV models, by id, a page at a time. Errors:"
        " BAD_USER_INPUT (`size`, `page`).",
    )
    async def vehicle_list(
        self,
        info: Info,
        filter: Annotated[VehicleFilter | None, _PROVIDER_FILTER] = None,
        size: Annotated[int, SIZE] = 20,
        page: Annotated[int, PAGE] = 1,
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
    @strawberry.mutation(
        name="createConnectedVehicle",
        permission_classes=[Caller],
        description="Start connecting a user's car: a `pending` vehicle with its"
        " `authorization_url`, where the user logs in at the provider and consents. Enode's"
        " link is made by a job: the mutation waits a bounded time for it, else the URL is"
        " null (read it with `connectedVehicle` or the subscription). Errors:"
        " VEHICLE_NOT_FOUND, CONNECT_PROVIDER_NOT_SUPPORTED, CONNECT_PROVIDER_NOT_ALLOWED,"
        " BAD_USER_INPUT (label, redirect_uri not registered, empty scope).",
    )
    async def create_connected_vehicle(
        self,
        info: Info,
        input: Annotated[
            CreateConnectedVehicleInput, strawberry.argument(description="The new vehicle.")
        ],
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

    @strawberry.mutation(
        name="authorizeConnectedVehicle",
        permission_classes=[Caller],
        description="Validate a pending vehicle once its user is back from consent, and"
        " answer by its status. `pending` and the callback received (or `code` given):"
        " validation runs once (a second call joins it)." + _WAITS + " `authorized`: the"
        " vehicle (calling again is harmless). `failed`: the error of its failure code"
        " (e.g. AUTHORIZATION_DENIED, AUTH_CODE_INVALID, SCOPE_NOT_GRANTED,"
        " CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED, CONNECT_PROVIDER_NOT_SUPPORTED,"
        " CONNECTED_VEHICLE_MISMATCH, AUTHORIZATION_EXPIRED, PROVIDER_UNAVAILABLE). Other"
        " errors: CONNECTED_VEHICLE_FORBIDDEN (`pending`, the user not back yet and no"
        " `code`), CONNECTED_VEHICLE_NOT_PENDING (`pending_removal`, `removed`,"
        " `deauthorized`), CONNECTED_VEHICLE_NOT_FOUND.",
    )
    async def authorize_connected_vehicle(
        self,
        info: Info,
        input: Annotated[
            AuthorizeConnectedVehicleInput,
            strawberry.argument(description="The vehicle, and the code if the client has it."),
        ],
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

    @strawberry.mutation(
        name="reauthorizeConnectedVehicle",
        permission_classes=[Caller],
        description="Ask the user to consent again: a `deauthorized` or `failed` vehicle goes"
        " back to `pending` with a new `authorization_url`, keeping its id; the earlier"
        " flow's links stop working; Enode's link as in `createConnectedVehicle`."
        " Validation then requires the same car (another VIN:"
        " CONNECTED_VEHICLE_MISMATCH). Errors: ILLEGAL_TRANSITION (any other status;"
        " nothing changed), CONNECTED_VEHICLE_NOT_FOUND, CONNECT_PROVIDER_NOT_ALLOWED,"
        " BAD_USER_INPUT (redirect_uri, empty scope).",
    )
    async def reauthorize_connected_vehicle(
        self,
        info: Info,
        input: Annotated[
            ReauthorizeConnectedVehicleInput,
            strawberry.argument(description="The vehicle, and what changes in its consent."),
        ],
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

    @strawberry.mutation(
        name="removeConnectedVehicle",
        permission_classes=[Caller],
        description="Remove a vehicle and forget its tokens. An `authorized` one goes to"
        " `pending_removal` while a job gives the access back at the provider, then"
        " `removed`." + _WAITS + " Any other is `removed` at once. Asking again is"
        " harmless. Errors: CONNECTED_VEHICLE_NOT_FOUND.",
    )
    async def remove_connected_vehicle(
        self,
        info: Info,
        input: Annotated[
            RemoveConnectedVehicleInput, strawberry.argument(description="The vehicle.")
        ],
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: authorization.remove_connected_vehicle(s, who, str(input.id)))
        if row.step:  # the access is given back at the provider by a job
            row = await _wait_for_vehicle(ctx, row.id, lambda v: v.status != Status.pending_removal)
        return ConnectedVehicleType.of(row)

    @strawberry.mutation(
        name="updateConnectedVehicle",
        permission_classes=[Caller],
        description="Change a vehicle's label (an event, `connected_vehicle.updated`, when it"
        " changes). Errors: CONNECTED_VEHICLE_NOT_FOUND, BAD_USER_INPUT (label).",
    )
    async def update_connected_vehicle(
        self,
        info: Info,
        input: Annotated[
            UpdateConnectedVehicleInput,
            strawberry.argument(description="The vehicle and its new label."),
        ],
    ) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = ctx.caller
        row = await ctx.run(lambda s: vehicles.update_label(s, who, str(input.id), input.label))
        return ConnectedVehicleType.of(row)
