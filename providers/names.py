"""The names the API shares with this room: providers and scopes (no HTTP here)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Provider", "Scope"]


class Provider(StrEnum):
    Enode = "Enode"
    Smartcar = "Smartcar"
    Tesla = "Tesla"
    HighMobility = "HighMobility"


class Scope(StrEnum):
    location = "location"
    charge_state = "charge_state"
    odometer = "odometer"
