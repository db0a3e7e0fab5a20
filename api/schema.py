"""The GraphQL types and queries of SPEC §3, with the seed API's names kept exactly.

Resolvers check the caller, call one workflow function in a worker thread (the database
layer is synchronous), enqueue after commit, and answer. Domain errors become GraphQL
errors with ``extensions.code`` in :meth:`Schema.process_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.ratelimit import RateLimited, RateLimits
from api.wakeups import Wakeups
from providers.names import Provider, Scope
from settings import Settings
from store.db import Database
from store.models import CatalogueVehicle, ConnectedVehicle
from workflows import vehicles
from workflows.clients import Principal, SigningSecrets
from workflows.errors import DomainError, ErrorCode
from workflows.events import vehicle_view
from workflows.machine import Status

__all__ = ["ConnectedVehicleType", "Context", "Query", "admin_only", "context_of", "wait_for"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# The domain's enums, exposed under the seed API's names (strawberry.enum registers the
# class itself, so fields below are typed with the domain's enums).
strawberry.enum(Status, name="ConnectedVehicleStatus")
strawberry.enum(Provider, name="CarConnectivityProvider")
strawberry.enum(Scope, name="ConnectScope")


class Context:
    """Per request: the database, the settings, and the caller (checked on first use);
    the process's cache of signing secrets and its listener of vehicles' changes."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        headers: Any,
        *,
        signing_secrets: SigningSecrets,
        wakeups: Wakeups,
        rate_limits: RateLimits | None = None,
        response: Any = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.signing_secrets = signing_secrets
        self.wakeups = wakeups
        self.rate_limits = rate_limits
        # The HTTP response being made (None on a WebSocket): a 429 sets its status and
        # Retry-After header.
        self.response = response
        self._headers = headers
        self._principal: Principal | None = None
        # graphql-transport-ws: the `connection_init` payload (browsers cannot set
        # headers on a WebSocket); Strawberry sets it here.
        self.connection_params: dict[str, Any] | None = None

    def _credentials(self) -> tuple[str | None, str | None]:
        sources = [self._headers, self.connection_params or {}]
        client_id = next((s.get("x-client-id") for s in sources if s.get("x-client-id")), None)
        auth = next((s.get("authorization") for s in sources if s.get("authorization")), "")
        token = auth[7:].strip() if str(auth).lower().startswith("bearer ") else None
        return client_id, token

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a worker thread, with a session of its own."""

        def call() -> T:
            with self.db.session() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(call)

    async def principal(self) -> Principal:
        """The caller: from the cached signing secret on the event loop (no thread hop),
        else from the client's row in a worker thread (once per client and TTL); then
        counted against the client's and the user's rates (once per request)."""
        if self._principal is None:
            client_id, token = self._credentials()
            who = self.signing_secrets.verify(client_id, token)
            if who is None:
                who = await self.run(
                    lambda s: self.signing_secrets.verify_from(s, client_id, token)
                )
            if self.rate_limits is not None:
                try:
                    await self.rate_limits.caller(who)
                except RateLimited as limited:
                    self.limited(limited)
                    raise
            self._principal = who
        return self._principal

    def limited(self, limited: RateLimited) -> None:
        """Answer 429 with Retry-After (the error itself says RATE_LIMIT_EXCEEDED)."""
        if self.response is not None:
            self.response.status_code = 429
            self.response.headers["retry-after"] = str(limited.retry_after)


async def wait_for(
    ctx: Context,
    vehicle_id: str,
    first: Callable[[Session], T],
    again: Callable[[Session], T],
    done: Callable[[T], bool],
) -> T:
    """Read with `first`; until `done` says so or the bounded wait
    (CV_MUTATION_WAIT_SECONDS) runs out, wait for the vehicle's change (a wake from
    CHANGED) and read `again`. The database is the truth, whatever the broker did: a
    wake only says when to look, and a slow re-read every `wait_recheck_seconds` covers
    a wake that was lost. Watching starts before the first read: no change is missed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.mutation_wait_seconds
    async with ctx.wakeups.watch(vehicle_id) as changed:
        value = await ctx.run(first)
        while not done(value):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    changed.wait(), min(remaining, ctx.settings.wait_recheck_seconds)
                )
            changed.clear()  # before the read: a change after it wakes the next wait
            value = await ctx.run(again)
    return value


def context_of(info: Info) -> Context:
    ctx: Context = info.context
    return ctx


async def admin_only(info: Info) -> Principal:
    who = await context_of(info).principal()
    if not who.admin:
        raise DomainError(ErrorCode.NOT_ALLOWED)
    return who


# -- types ------------------------------------------------------------------------------------


@strawberry.type
class Failure:
    code: str
    message: str
    retryable: bool


@strawberry.type(name="ConnectedVehicle")
class ConnectedVehicleType:
    id: strawberry.ID
    vehicle_id: strawberry.ID
    status: Status
    authorization_url: str | None
    provider: Provider
    scope: list[Scope | None] | None
    label: str | None
    vin: str | None
    failure: Failure | None
    created_at: datetime
    updated_at: datetime
    authorized_at: datetime | None
    # In connectedVehicleList: pass the last one's as `after` for the next page.
    cursor: str | None = None

    @classmethod
    def of(cls, v: ConnectedVehicle) -> ConnectedVehicleType:
        return cls.from_view(vehicle_view(v, for_owner=True))  # the API knows its caller

    @classmethod
    def from_view(cls, v: dict[str, Any]) -> ConnectedVehicleType:
        """From an event's payload (workflows.events.vehicle_view)."""
        failure = v.get("failure")
        return cls(
            id=strawberry.ID(v["id"]),
            vehicle_id=strawberry.ID(v["vehicle_id"]),
            status=Status(v["status"]),
            authorization_url=v.get("authorization_url"),
            provider=Provider(v["provider"]),
            scope=[Scope(s) for s in v.get("scope") or []],
            label=v.get("label"),
            vin=v.get("vin"),
            failure=(
                Failure(
                    code=failure["code"],
                    message=failure["message"] or "",
                    retryable=failure["retryable"],
                )
                if failure
                else None
            ),
            created_at=datetime.fromisoformat(v["created_at"]),
            updated_at=datetime.fromisoformat(v["updated_at"]),
            authorized_at=(
                datetime.fromisoformat(v["authorized_at"]) if v.get("authorized_at") else None
            ),
        )


@strawberry.type
class VehicleConnect:
    providers: list[Provider]


@strawberry.type(name="Vehicle")
class VehicleType:
    id: strawberry.ID
    make: str
    model: str
    year_from: int | None
    year_to: int | None
    connect: VehicleConnect

    @classmethod
    def of(cls, v: CatalogueVehicle) -> VehicleType:
        return cls(
            id=strawberry.ID(v.id),
            make=v.make,
            model=v.model,
            year_from=v.year_from,
            year_to=v.year_to,
            connect=VehicleConnect(providers=[Provider(p) for p in v.providers]),
        )


# -- inputs -----------------------------------------------------------------------------------


@strawberry.input
class ConnectedVehicleFilter:
    status: Status | None = None


@strawberry.input
class VehicleConnectFilter:
    providers: list[Provider] | None = None


@strawberry.input
class VehicleFilter:
    connect: VehicleConnectFilter | None = None


# -- operations -------------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(name="connectedVehicle")
    async def connected_vehicle(self, info: Info, id: strawberry.ID) -> ConnectedVehicleType:
        ctx = context_of(info)
        who = await ctx.principal()
        row = await ctx.run(lambda s: vehicles.view_owned(s, who, str(id)))
        return ConnectedVehicleType.of(row)

    @strawberry.field(name="connectedVehicleList")
    async def connected_vehicle_list(
        self,
        info: Info,
        filter: ConnectedVehicleFilter | None = None,
        size: int = 20,
        page: int = 1,
        after: str | None = None,
    ) -> list[ConnectedVehicleType]:
        ctx = context_of(info)
        who = await ctx.principal()
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

    @strawberry.field
    async def vehicle(self, info: Info, id: strawberry.ID) -> VehicleType:
        ctx = context_of(info)
        await ctx.principal()
        row = await ctx.run(lambda s: vehicles.catalogue_vehicle(s, str(id)))
        if row is None:
            raise DomainError(ErrorCode.VEHICLE_NOT_FOUND)
        return VehicleType.of(row)

    @strawberry.field(name="vehicleList")
    async def vehicle_list(
        self, info: Info, filter: VehicleFilter | None = None, size: int = 20, page: int = 1
    ) -> list[VehicleType]:
        ctx = context_of(info)
        await ctx.principal()
        wanted = None
        if filter and filter.connect and filter.connect.providers:
            wanted = [p.value for p in filter.connect.providers]
        rows = await ctx.run(
            lambda s: vehicles.catalogue(s, providers=wanted, size=size, page=page)
        )
        return [VehicleType.of(r) for r in rows]
