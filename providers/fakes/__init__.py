"""Faithful fakes of the providers, as ASGI apps: the tests' providers and the demo's."""

from __future__ import annotations

from providers.fakes.common import FakeProvider
from providers.fakes.smartcar import FakeSmartcar

__all__ = ["FAKES", "FakeProvider", "FakeSmartcar"]

FAKES: dict[str, type[FakeProvider]] = {"Smartcar": FakeSmartcar}
