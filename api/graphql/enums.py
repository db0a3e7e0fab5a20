"""The domain's enums, exposed under the seed API's names (SPEC §2), each value described.

``strawberry.enum`` registers the domain's class itself (fields are typed with
``Status``, ``Provider``, ``Scope``), so the values' descriptions cannot sit in those
classes, which belong to `workflows` and `providers`: they are set here on the
registered definition, from one table per enum."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import strawberry

from providers.names import Provider, Scope
from workflows.machine import Status

__all__ = ["expose"]


def expose(enum: type[Enum], name: str, description: str, values: Mapping[str, str]) -> None:
    """Register `enum` as GraphQL's `name`; each value described from `values` (a value
    missing there is left bare, and tests/api/test_schema_docs.py names it)."""
    strawberry.enum(enum, name=name, description=description)
    for value in enum.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values.get(value.name)


expose(
    Status,
    "ConnectedVehicleStatus",
    "Where a connected vehicle is in its life. Only these changes happen: pending →"
    " authorized | failed; failed → pending (reauthorizeConnectedVehicle, or an operator's"
    " re-drive); authorized → pending_removal → removed; authorized → deauthorized;"
    " deauthorized → pending (reauthorizeConnectedVehicle); pending | failed | deauthorized"
    " → removed. Each change is an event (subscription `connectedVehicle`, webhooks"
    " `connected_vehicle.<status>`).",
    {
        "pending": "Created (or sent back to consent): waiting for the user to finish the"
        " provider's flow at `authorization_url`, then for validation. Becomes `failed`"
        " with AUTHORIZATION_EXPIRED when the flow is not finished within its time to live.",
        "authorized": "Validated: tokens held (Enode: the link completed), exactly one car on"
        " the account, of the make the catalogue says, every scope granted. `vin` is"
        " known; `connectedVehicleData` can be read.",
        "failed": "Validation failed, the user refused consent, or the authorization"
        " expired; `failure.code` says which. `reauthorizeConnectedVehicle` starts again on"
        " the same id.",
        "pending_removal": "Removal asked for: the access is being given back at the"
        " provider (a job); `removed` next.",
        "removed": "Removed: access given back, tokens forgotten. Final.",
        "deauthorized": "Was authorized, then lost access (a refused token refresh, consent"
        " revoked at the maker, a second car on an Enode account); `failure.code` says why"
        " (ACCESS_REVOKED, CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED). The user may consent again:"
        " `reauthorizeConnectedVehicle`.",
    },
)

expose(
    Provider,
    "CarConnectivityProvider",
    "A connectivity provider: where the car's data lives and where the user consents."
    " Spelled exactly so, case included. A client uses a provider only once the service"
    " holds that client's credentials for it (else CONNECT_PROVIDER_NOT_ALLOWED).",
    {
        "Enode": "Enode (aggregator). The consent link is made at Enode by a job, so"
        " `authorization_url` may come a moment after the vehicle. A link grants the whole"
        " maker account: one holding two cars fails with"
        " CONNECT_MULTIPLE_VEHICLES_NOT_ALLOWED.",
        "Smartcar": "Smartcar (aggregator): OAuth code flow (Smartcar Connect).",
        "Tesla": "Tesla's own Fleet API: OAuth code flow.",
        "HighMobility": "High Mobility (aggregator of makers' APIs): OAuth code flow.",
    },
)

expose(
    Scope,
    "ConnectScope",
    "What data a connected vehicle may read. The service asks the provider for its own"
    " scopes for each (plus those validation needs: the VIN and the make); every one"
    " asked for must be granted, else the vehicle fails with SCOPE_NOT_GRANTED.",
    {
        "location": "The car's position: `connectedVehicleData.location`.",
        "charge_state": "The battery and charging: `connectedVehicleData.battery` and `.charge`.",
        "odometer": "The distance driven: `connectedVehicleData.odometer`.",
    },
)
