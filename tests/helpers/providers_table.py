"""The shared provider table: one row per provider. The adapter contract suite and the
end-to-end table run every row. Adding a provider adds a row here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def car(vin: str = "5YJ3E1EA7NF000001", make: str = "Tesla", model: str = "Model 3") -> dict:
    return {"make": make, "model": model, "year": 2022, "vin": vin}


@dataclass(frozen=True)
class ProviderCase:
    name: str
    flow: str  # "code" or "link"
    # A catalogue car the provider connects, and a fake account's car of its make.
    catalogue_id: str
    car: dict[str, Any]
    # A car of another make, for "the car found is not the car the user said"; None when
    # the provider serves one make only (then the catalogue refuses at creation).
    other_make: dict[str, Any] | None
    # Where the provider is called during validation (for injected faults).
    api_path: str
    token_path: str | None
    # A scope string the user can withhold that a `location` request needs.
    location_scope: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


PROVIDERS = [
    ProviderCase(
        name="Smartcar",
        flow="code",
        catalogue_id="tesla-model-3",
        car=car(),
        other_make=car("KNDC3DLC5N5000001", "Kia", "EV6"),
        api_path="/v2.0/vehicles",
        token_path="/oauth/token",
        location_scope="read_location",
    ),
    ProviderCase(
        name="Tesla",
        flow="code",
        catalogue_id="tesla-model-y",
        car=car("7SAYGDEE1PF000001", "Tesla", "Model Y"),
        other_make=None,
        api_path="/api/1/vehicles",
        token_path="/oauth2/v3/token",
        location_scope="vehicle_location",
    ),
    ProviderCase(
        name="HighMobility",
        flow="code",
        catalogue_id="bmw-i4",
        car=car("WBY71AW010FP00001", "BMW", "i4"),
        other_make=car("W1N2437011J000001", "Mercedes-Benz", "EQA"),
        api_path="/v1/vehicles",
        token_path="/v1/access_tokens",
        location_scope="vehicle:location",
    ),
    ProviderCase(
        name="Enode",
        flow="link",
        catalogue_id="volkswagen-id-4",
        car=car("WVGZZZE2ZNP000001", "Volkswagen", "ID.4"),
        other_make=car("KNDC3DLC5N5000002", "Kia", "EV6"),
        api_path="/users/",
        token_path=None,
        location_scope="vehicle:read:location",
    ),
]

BY_NAME = {case.name: case for case in PROVIDERS}
