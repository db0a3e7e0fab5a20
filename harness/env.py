"""The environment of a run: the service's settings are read from CV_* variables once per
process (settings.get_settings), so a run sets them before anything reads them, and its
children inherit them."""

from __future__ import annotations

import os

from cryptography.fernet import Fernet

from settings import Settings, get_settings

__all__ = ["new_secret_key", "use_environment"]


def new_secret_key() -> str:
    """A fresh Fernet key: the run's database holds nothing another key can read."""
    return Fernet.generate_key().decode()


def use_environment(**values: str) -> Settings:
    """Set `values` (CV_... names) in this process's environment and read the settings
    anew. Modules that keep settings from their import (celeryconfig) must be imported
    after the first call."""
    # A measurement is no client's traffic: no request rate applies to it.
    for name in ("CLIENT", "USER", "ADDRESS"):
        os.environ.setdefault(f"CV_RATE_{name}_PER_MINUTE", str(10**9))
    os.environ.update(values)
    get_settings.cache_clear()
    return get_settings()
