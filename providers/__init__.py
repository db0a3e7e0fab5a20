"""Connectivity providers: one adapter per provider over httpx, each with a faithful fake
(``providers.fakes``). Every error leaves this room classified, retryable or permanent.

Adding a provider: one adapter file here, one fake in ``fakes/``, one row in
``ADAPTERS`` and one in the fakes' ``FAKES``, one row in the tests' provider table.
"""

from __future__ import annotations

import httpx

from providers.base import Adapter
from providers.code_flow import CodeFlowAdapter
from providers.enode import EnodeAdapter
from providers.errors import PermanentError, ProviderError, Reason, RetryableError
from providers.highmobility import HighMobilityAdapter
from providers.names import Provider, Scope
from providers.retry import RetryPolicy
from providers.smartcar import SmartcarAdapter
from providers.tesla import TeslaAdapter
from providers.values import AccountRef, AppTokenCache, Credentials, Tokens, VehicleInfo

__all__ = [
    "ADAPTERS",
    "AccountRef",
    "Adapter",
    "AppTokenCache",
    "CodeFlowAdapter",
    "Credentials",
    "EnodeAdapter",
    "PermanentError",
    "Provider",
    "ProviderError",
    "Reason",
    "RetryPolicy",
    "RetryableError",
    "Scope",
    "Tokens",
    "VehicleInfo",
    "adapter_for",
]

ADAPTERS: dict[Provider, type[Adapter]] = {
    Provider.Enode: EnodeAdapter,
    Provider.Smartcar: SmartcarAdapter,
    Provider.Tesla: TeslaAdapter,
    Provider.HighMobility: HighMobilityAdapter,
}


def adapter_for(
    provider: str,
    credentials: Credentials,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
    token_cache: AppTokenCache | None = None,
    policy: RetryPolicy | None = None,
) -> Adapter:
    try:
        cls = ADAPTERS[Provider(provider)]
    except (KeyError, ValueError) as exc:
        raise LookupError(f"no adapter for provider {provider!r}") from exc
    return cls(
        credentials, timeout=timeout, transport=transport, token_cache=token_cache, policy=policy
    )
