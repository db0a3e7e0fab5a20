"""``connectedVehicleData(id)``: the car's live data, from the last snapshot a worker
stored (SPEC §3). The API never calls the provider: a stale snapshot makes a fetch job
due (once, however many ask) and the query waits the bounded time for it; when that runs
out, or the fetch failed (a sleeping car, a provider down), the last snapshot is the
answer, and with none at all it is PROVIDER_UNAVAILABLE. The caller is checked first, by
the field's permission (:class:`~api.graphql.context.Caller`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from api.graphql.context import Caller, context_of, wait_for
from api.graphql.inputs import VEHICLE_ID
from providers.data import VehicleData
from workflows import data
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status

__all__ = ["DataQuery"]


_MEASURED = "When the provider measured this part, where it says; null where it does not."


@strawberry.type(
    name="Battery",
    description="The traction battery. Null where the vehicle's `scope` lacks `charge_state`.",
)
class BatteryType:
    percentage: float | None = strawberry.field(description="State of charge, percent (0 to 100).")
    range_km: float | None = strawberry.field(description="Estimated range on this charge, km.")
    capacity_kwh: float | None = strawberry.field(
        description="Usable capacity, kWh, where the provider says."
    )
    updated_at: datetime | None = strawberry.field(description=_MEASURED)


@strawberry.type(
    name="Charge",
    description="Charging. Null where the vehicle's `scope` lacks `charge_state`.",
)
class ChargeType:
    is_plugged_in: bool | None = strawberry.field(
        description="Whether a charging cable is connected."
    )
    is_charging: bool | None = strawberry.field(
        description="Whether energy is flowing into the battery now."
    )
    charge_rate_kw: float | None = strawberry.field(description="Charging power now, kW.")
    charge_limit_percentage: float | None = strawberry.field(
        description="The state of charge charging stops at, percent (0 to 100)."
    )
    time_remaining_minutes: float | None = strawberry.field(
        description="Minutes until charging completes, as the provider estimates; null"
        " when not charging or not known."
    )
    updated_at: datetime | None = strawberry.field(description=_MEASURED)


@strawberry.type(
    name="Location",
    description="Where the car is. Null where the vehicle's `scope` lacks `location`.",
)
class LocationType:
    latitude: float = strawberry.field(description="Latitude, decimal degrees (WGS 84).")
    longitude: float = strawberry.field(description="Longitude, decimal degrees (WGS 84).")
    updated_at: datetime | None = strawberry.field(description=_MEASURED)


@strawberry.type(
    name="Odometer",
    description="Distance driven. Null where the vehicle's `scope` lacks `odometer`.",
)
class OdometerType:
    value_km: float = strawberry.field(description="The odometer's reading, km.")
    updated_at: datetime | None = strawberry.field(description=_MEASURED)


@strawberry.type(
    name="ConnectedVehicleData",
    description="The car's live data from the last snapshot the service stored (the API"
    " never calls the provider): four parts, each null where the vehicle's `scope` lacks"
    " it or the provider did not answer it. Percentages 0 to 100, distances km, energy kWh,"
    " power kW.",
)
class ConnectedVehicleDataType:
    id: strawberry.ID = strawberry.field(description="The connected vehicle's id.")
    battery: BatteryType | None = strawberry.field(description="The battery (`charge_state`).")
    charge: ChargeType | None = strawberry.field(description="Charging (`charge_state`).")
    location: LocationType | None = strawberry.field(description="Position (`location`).")
    odometer: OdometerType | None = strawberry.field(description="Odometer (`odometer`).")
    fetched_at: datetime | None = strawberry.field(
        description="When the service last read every part the scope covers from the"
        " provider (UTC); null when only a provider's webhook has filled the snapshot."
        " Each part's `updated_at` says when it was measured."
    )

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
    @strawberry.field(
        name="connectedVehicleData",
        permission_classes=[Caller],
        description="The car's live data, answered from the last snapshot (the API never"
        " calls the provider). A snapshot older than the service's maximum age (setting"
        " CV_DATA_MAX_AGE_SECONDS) makes a job fetch a new one, once however many ask, and"
        " the query waits a bounded time for it; otherwise, or when that fetch fails, the"
        " last snapshot is the answer. Errors: CONNECTED_VEHICLE_NOT_FOUND,"
        " CONNECTED_VEHICLE_FORBIDDEN (not `authorized`), PROVIDER_UNAVAILABLE (no snapshot"
        " yet and the provider failing or slow: ask again), RATE_LIMIT_EXCEEDED.",
    )
    async def connected_vehicle_data(
        self, info: Info, id: Annotated[strawberry.ID, VEHICLE_ID]
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
