"""``connectedVehicleData(id)``: the car's live data, from the last snapshot a worker
stored (SPEC §3). The API never calls the provider: a stale snapshot makes a fetch job
due (once, however many ask) and the query waits the bounded time for it; when that runs
out, or the fetch failed (a sleeping car, a provider down), the last snapshot is the
answer, and with none at all it is PROVIDER_UNAVAILABLE. The caller is checked first, by
the field's permission (:class:`~api.graphql.context.Caller`)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.graphql.context import Caller, context_of, wait_for
from providers.data import VehicleData
from workflows import data
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status

__all__ = ["DataQuery"]


@strawberry.type(name="Battery")
class BatteryType:
    percentage: float | None
    range_km: float | None
    capacity_kwh: float | None
    updated_at: datetime | None


@strawberry.type(name="Charge")
class ChargeType:
    is_plugged_in: bool | None
    is_charging: bool | None
    charge_rate_kw: float | None
    charge_limit_percentage: float | None
    time_remaining_minutes: float | None
    updated_at: datetime | None


@strawberry.type(name="Location")
class LocationType:
    latitude: float
    longitude: float
    updated_at: datetime | None


@strawberry.type(name="Odometer")
class OdometerType:
    value_km: float
    updated_at: datetime | None


@strawberry.type(name="ConnectedVehicleData")
class ConnectedVehicleDataType:
    id: strawberry.ID  # the connected vehicle's
    battery: BatteryType | None
    charge: ChargeType | None
    location: LocationType | None
    odometer: OdometerType | None
    # When the service stored this snapshot (each part says when it was measured).
    fetched_at: datetime | None

    @classmethod
    def of(cls, view: data.DataView, snapshot: VehicleData) -> ConnectedVehicleDataType:
        b, c, loc, odo = snapshot.battery, snapshot.charge, snapshot.location, snapshot.odometer
        return cls(
            id=strawberry.ID(view.vehicle_id),
            battery=BatteryType(**vars(b)) if b else None,
            charge=ChargeType(**vars(c)) if c else None,
            location=LocationType(**vars(loc)) if loc else None,
            odometer=OdometerType(**vars(odo)) if odo else None,
            fetched_at=view.fetched_at,
        )


def _settled(view: data.DataView, before: data.DataView) -> bool:
    """The fetch waited for is over (stored or failed), or the vehicle changed status.
    Told by the snapshot's own times changing, never by comparing clocks of two hosts."""
    if view.status != Status.authorized:
        return True
    return (view.fetched_at, view.fetch_failed_at) != (before.fetched_at, before.fetch_failed_at)


@strawberry.type
class DataQuery:
    @strawberry.field(name="connectedVehicleData", permission_classes=[Caller])
    async def connected_vehicle_data(
        self, info: Info, id: strawberry.ID
    ) -> ConnectedVehicleDataType:
        ctx = context_of(info)
        who = ctx.caller
        vehicle_id = str(id)
        asked: list[data.Asked] = []  # the ask's answer: whether, and from what, to wait

        def ask(s: Session) -> data.DataView:
            asked.append(data.ask(s, ctx.settings, who, vehicle_id))
            return asked[0].view

        def settled(view: data.DataView) -> bool:
            return not asked[0].wait or _settled(view, asked[0].view)

        view = await wait_for(ctx, vehicle_id, ask, lambda s: data.look(s, vehicle_id), settled)
        if view.status != Status.authorized:
            raise DomainError(ErrorCode.CONNECTED_VEHICLE_FORBIDDEN)
        if view.data is None:
            raise DomainError(ErrorCode.PROVIDER_UNAVAILABLE, provider=view.provider)
        return ConnectedVehicleDataType.of(view, view.data)
