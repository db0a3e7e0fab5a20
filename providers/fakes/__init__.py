"""Faithful fakes of the providers, as ASGI apps: the tests' providers and the demo's."""

from __future__ import annotations

from providers.fakes.common import FakeProvider
from providers.fakes.enode import FakeEnode
from providers.fakes.highmobility import FakeHighMobility
from providers.fakes.oauth import FakeCodeFlow
from providers.fakes.smartcar import FakeSmartcar
from providers.fakes.tesla import FakeTesla

__all__ = [
    "FAKES",
    "FakeCodeFlow",
    "FakeEnode",
    "FakeHighMobility",
    "FakeProvider",
    "FakeSmartcar",
    "FakeTesla",
]

# One fake per provider, by the provider's name (CarConnectivityProvider).
FAKES: dict[str, type[FakeProvider]] = {
    "Enode": FakeEnode,
    "Smartcar": FakeSmartcar,
    "Tesla": FakeTesla,
    "HighMobility": FakeHighMobility,
}
