"""Connectivity providers: one adapter per provider over httpx, each with a faithful fake
(``providers.fakes``). Every error leaves this room classified, retryable or permanent."""

from __future__ import annotations

import httpx

from providers.base import (
    CodeFlowAdapter,
    Credentials,
    Provider,
    Scope,
    Tokens,
    VehicleInfo,
)
from providers.errors import PermanentError, ProviderError, Reason, RetryableError
from providers.smartcar import SmartcarAdapter

__all__ = [
    "ADAPTERS",
    "CodeFlowAdapter",
    "Credentials",
    "PermanentError",
    "Provider",
    "ProviderError",
    "Reason",
    "RetryableError",
    "Scope",
    "Tokens",
    "VehicleInfo",
    "adapter_for",
]

ADAPTERS: dict[Provider, type[CodeFlowAdapter]] = {
    Provider.Smartcar: SmartcarAdapter,
}


def adapter_for(
    provider: str,
    credentials: Credentials,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> CodeFlowAdapter:
    try:
        cls = ADAPTERS[Provider(provider)]
    except (KeyError, ValueError) as exc:
        raise LookupError(f"no adapter for provider {provider!r}") from exc
    return cls(credentials, timeout=timeout, transport=transport)
