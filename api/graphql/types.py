"""The GraphQL types of connected vehicles and of the catalogue (SPEC §3), with the seed
API's names kept exactly: the outputs, the domain's enums, and the inputs that vehicles'
queries and mutations take."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from providers.names import Provider, Scope
from store.models import CatalogueVehicle, ConnectedVehicle
from workflows.events import vehicle_view
from workflows.machine import Status

__all__ = [
    "AuthorizeConnectedVehicleInput",
    "AuthorizeConnectedVehicleOptions",
    "ConnectedVehicleFilter",
    "ConnectedVehicleType",
    "CreateConnectedVehicleInput",
    "CreateConnectedVehicleOptions",
    "Failure",
    "ReauthorizeConnectedVehicleInput",
    "RemoveConnectedVehicleInput",
    "UpdateConnectedVehicleInput",
    "VehicleConnect",
    "VehicleConnectFilter",
    "VehicleFilter",
    "VehicleType",
]

# The domain's enums, exposed under the seed API's names (strawberry.enum registers the
# class itself, so fields below are typed with the domain's enums).
strawberry.enum(Status, name="ConnectedVehicleStatus")
strawberry.enum(Provider, name="CarConnectivityProvider")
strawberry.enum(Scope, name="ConnectScope")


# -- outputs ----------------------------------------------------------------------------------


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


# -- the queries' filters ---------------------------------------------------------------------


@strawberry.input
class ConnectedVehicleFilter:
    status: Status | None = None


@strawberry.input
class VehicleConnectFilter:
    providers: list[Provider] | None = None


@strawberry.input
class VehicleFilter:
    connect: VehicleConnectFilter | None = None


# -- the mutations' inputs --------------------------------------------------------------------


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
