"""The GraphQL types of connected vehicles and of the catalogue (SPEC §2, §3), with the seed
API's names kept exactly, each type and field described for the schema's readers. The
domain's enums are exposed in :mod:`api.graphql.enums`, the inputs in
:mod:`api.graphql.inputs`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

import api.graphql.enums  # noqa: F401  (registers the domain's enums before they are used)
from providers.names import Provider, Scope
from store.models import CatalogueVehicle, ConnectedVehicle
from workflows.events import vehicle_view
from workflows.machine import Status

__all__ = ["ConnectedVehicleType", "Failure", "VehicleConnect", "VehicleType"]


# -- outputs ----------------------------------------------------------------------------------


@strawberry.type(
    description="Why a connected vehicle is `failed` or `deauthorized`: an error of the API,"
    " as `authorizeConnectedVehicle` answers it for a failed vehicle."
)
class Failure:
    code: str = strawberry.field(
        description="The error code (`extensions.code` of the API's errors), e.g."
        " AUTHORIZATION_DENIED, AUTH_CODE_INVALID, SCOPE_NOT_GRANTED,"
        " CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED, AUTHORIZATION_EXPIRED, ACCESS_REVOKED,"
        " PROVIDER_UNAVAILABLE. Branch on this."
    )
    message: str = strawberry.field(
        description="The code's message, in English, for people; `$PROVIDER` filled in."
    )
    retryable: bool = strawberry.field(
        description="True when the cause was passing (PROVIDER_UNAVAILABLE,"
        " AUTHORIZATION_INTERRUPTED): the service's operators may re-drive the vehicle."
        " Either way, `reauthorizeConnectedVehicle` asks the user to consent again, on the"
        " same id."
    )


@strawberry.type(
    name="ConnectedVehicle",
    description="A user's car connected through a provider: a state machine (`status`) that"
    " the service drives. Belongs to one client and one user: another's is"
    " CONNECTED_VEHICLE_NOT_FOUND, never visible.",
)
class ConnectedVehicleType:
    id: strawberry.ID = strawberry.field(
        description="The connected vehicle's id, kept for its whole life (a re-consent keeps it)."
    )
    vehicle_id: strawberry.ID = strawberry.field(
        description="The catalogue vehicle it was created for (`vehicle(id)`), e.g."
        " `tesla-model-3`."
    )
    status: Status = strawberry.field(description="Where it is in its life.")
    authorization_url: str | None = strawberry.field(
        description="Where to send the user to log in at the provider and consent. Set"
        " while `pending` only, and shown to the vehicle's owner only (events and webhooks"
        " never carry it: it holds the OAuth state). Enode's is made by a job: null until"
        " then (read `connectedVehicle` again, or follow the subscription)."
    )
    provider: Provider = strawberry.field(description="The provider it is connected through.")
    scope: list[Scope | None] | None = strawberry.field(
        description="The data asked for (by default every ConnectScope); once `authorized`,"
        " all of it was granted. `connectedVehicleData` answers these parts only."
    )
    label: str | None = strawberry.field(
        description="The client's own name for it (at most 200 characters); null when none."
    )
    vin: str | None = strawberry.field(
        description="The car's VIN, read from the provider at validation; null before. A"
        " re-consent must bring the same VIN back (else CONNECTED_VEHICLE_MISMATCH)."
    )
    failure: Failure | None = strawberry.field(
        description="Why it is `failed` or `deauthorized`; null in any other status."
    )
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    updated_at: datetime = strawberry.field(
        description="When it last changed: status, label, authorization URL (UTC)."
    )
    authorized_at: datetime | None = strawberry.field(
        description="When validation last made it `authorized` (UTC); null if it never was."
    )
    cursor: str | None = strawberry.field(
        default=None,
        description="In `connectedVehicleList` only (null elsewhere): an opaque cursor;"
        " pass the last vehicle's as `after` for the next page.",
    )

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


@strawberry.type(description="How a catalogue vehicle can be connected.")
class VehicleConnect:
    providers: list[Provider] = strawberry.field(
        description="The providers it can be connected through (`createConnectedVehicle`'s"
        " `provider`; another is CONNECT_PROVIDER_NOT_SUPPORTED)."
    )


@strawberry.type(
    name="Vehicle",
    description="An EV model of the catalogue (it ships with the service; operators extend"
    " it): what a user picks before connecting their car.",
)
class VehicleType:
    id: strawberry.ID = strawberry.field(
        description="Its id, e.g. `tesla-model-3`: `createConnectedVehicle`'s `vehicle_id`."
    )
    make: str = strawberry.field(
        description="The maker, e.g. `Tesla`. Validation checks the car found at the"
        " provider is of this make (else CONNECT_PROVIDER_NOT_SUPPORTED)."
    )
    model: str = strawberry.field(description="The model, e.g. `Model 3`.")
    year_from: int | None = strawberry.field(
        description="The first model year it covers; null when not known."
    )
    year_to: int | None = strawberry.field(
        description="The last model year it covers; null while it is still made."
    )
    connect: VehicleConnect = strawberry.field(description="How it can be connected.")

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
