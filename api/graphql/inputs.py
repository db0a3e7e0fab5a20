"""What the connected vehicles' and the catalogue's queries and mutations take (SPEC §3,
the seed API's names): their filters and inputs, and the arguments several fields share,
each described for the schema's readers."""

from __future__ import annotations

import strawberry

import api.graphql.enums  # noqa: F401  (registers the domain's enums before they are used)
from providers.names import Provider, Scope
from workflows.machine import Status

__all__ = [
    "AFTER",
    "PAGE",
    "SIZE",
    "VEHICLE_ID",
    "AuthorizeConnectedVehicleInput",
    "AuthorizeConnectedVehicleOptions",
    "ConnectedVehicleFilter",
    "CreateConnectedVehicleInput",
    "CreateConnectedVehicleOptions",
    "ReauthorizeConnectedVehicleInput",
    "RemoveConnectedVehicleInput",
    "UpdateConnectedVehicleInput",
    "VehicleConnectFilter",
    "VehicleFilter",
]

# -- arguments that several fields take ----------------------------------------------------

VEHICLE_ID = strawberry.argument(description="The connected vehicle's id.")
SIZE = strawberry.argument(description="How many per page: 1 to 100 (else BAD_USER_INPUT).")
PAGE = strawberry.argument(description="Which page, from 1, of `size` each.")
AFTER = strawberry.argument(
    description="The `cursor` of the previous page's last vehicle: the page after it, at"
    " the same cost however deep, no vehicle seen twice or skipped. Not with `page`;"
    " a cursor that is malformed, altered, or another caller's is BAD_USER_INPUT."
)

_VEHICLE_ID_FIELD = "The connected vehicle's id."


# -- the queries' filters -------------------------------------------------------------------


@strawberry.input(description="Which of the caller's connected vehicles to list.")
class ConnectedVehicleFilter:
    status: Status | None = strawberry.field(
        default=None, description="Only vehicles in this status; null: every status."
    )


@strawberry.input(description="Catalogue vehicles by how they can be connected.")
class VehicleConnectFilter:
    providers: list[Provider] | None = strawberry.field(
        default=None,
        description="Only vehicles that can be connected through at least one of these;"
        " null or empty: any.",
    )


@strawberry.input(description="Which catalogue vehicles to list.")
class VehicleFilter:
    connect: VehicleConnectFilter | None = strawberry.field(
        default=None, description="By provider; null: every vehicle."
    )


# -- the mutations' inputs ------------------------------------------------------------------


@strawberry.input(
    description="Where the user comes back to, and what is asked for. For"
    " `reauthorizeConnectedVehicle` too, where each one left out keeps the vehicle's own."
)
class CreateConnectedVehicleOptions:
    redirect_uri: str | None = strawberry.field(
        default=None,
        description="The client's page the user is sent to after the provider (303 from the"
        " service's /oauth/callback, with query parameters `connected_vehicle_id`, `status`,"
        " and `error` when the provider refused). Must be one the client registered,"
        " exactly, at most 1,000 characters (else BAD_USER_INPUT). Left out: the service's"
        " own page asks the user to return to the app.",
    )
    scope: list[Scope] | None = strawberry.field(
        default=None,
        description="The data to ask for, each granted or the vehicle fails with"
        " SCOPE_NOT_GRANTED. Left out: every ConnectScope. An empty list is BAD_USER_INPUT.",
    )


@strawberry.input(description="A new connected vehicle.")
class CreateConnectedVehicleInput:
    vehicle_id: strawberry.ID = strawberry.field(
        description="The catalogue vehicle the user says the car is (`vehicleList`), e.g."
        " `tesla-model-3`; unknown: VEHICLE_NOT_FOUND."
    )
    provider: Provider = strawberry.field(
        description="The provider to connect through: one the catalogue vehicle lists (else"
        " CONNECT_PROVIDER_NOT_SUPPORTED) and the client is configured for (else"
        " CONNECT_PROVIDER_NOT_ALLOWED)."
    )
    label: str | None = strawberry.field(
        default=None,
        description="The client's own name for it: at most 200 characters, no control"
        " characters (else BAD_USER_INPUT).",
    )
    options: CreateConnectedVehicleOptions | None = strawberry.field(
        default=None, description="Redirect URI and scope; left out: the defaults."
    )


@strawberry.input(description="How the provider's redirect came back.")
class AuthorizeConnectedVehicleOptions:
    code: str | None = strawberry.field(
        default=None,
        description="The authorization code, when the client's own page received the"
        " provider's redirect. Left out when the service's /oauth/callback received it."
        " Enode's flow has none.",
    )


@strawberry.input(description="A pending vehicle whose user has come back from consent.")
class AuthorizeConnectedVehicleInput:
    id: strawberry.ID = strawberry.field(description=_VEHICLE_ID_FIELD)
    options: AuthorizeConnectedVehicleOptions | None = strawberry.field(
        default=None,
        description="Left out or empty: the service's own callback received the code.",
    )


@strawberry.input(description="A `deauthorized` or `failed` vehicle to consent for again.")
class ReauthorizeConnectedVehicleInput:
    id: strawberry.ID = strawberry.field(description=_VEHICLE_ID_FIELD)
    options: CreateConnectedVehicleOptions | None = strawberry.field(
        default=None,
        description="Left out (or each part left out): the vehicle's own redirect URI and scope.",
    )


@strawberry.input(description="A vehicle to remove.")
class RemoveConnectedVehicleInput:
    id: strawberry.ID = strawberry.field(description=_VEHICLE_ID_FIELD)


@strawberry.input(description="A vehicle's new label.")
class UpdateConnectedVehicleInput:
    id: strawberry.ID = strawberry.field(description=_VEHICLE_ID_FIELD)
    label: str | None = strawberry.field(
        default=None,
        description="The new label: at most 200 characters, no control characters (else"
        " BAD_USER_INPUT). Null or left out removes it.",
    )
