"""What a provider's webhook tells, in the domain's words. Each adapter reads its own
provider's deliveries (signature scheme, header, body format) into these; the workflow
that acts on them (``workflows.provider_events``) knows no provider's format."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from providers.data import VehicleData

__all__ = ["Happening", "ProviderEvent", "hmac_hex"]


class Happening(StrEnum):
    # The service's access to the vehicle ended at the provider (consent revoked, the
    # car gone from the account, the provider asks to re-authenticate).
    access_lost = "access_lost"
    # Another vehicle appeared on an account linked whole (Enode): more than one car.
    vehicle_added = "vehicle_added"
    # The vehicle's data, measured by the provider: the snapshot is updated from it.
    data = "data"
    # Nothing for the service to do (a test event, a state this service ignores).
    nothing = "nothing"


@dataclass(frozen=True)
class ProviderEvent:
    """One thing a delivery tells. The vehicle is named by the provider's ids: its user
    (``user_id``, Enode) and/or its vehicle (``vehicle_id``)."""

    happening: Happening
    user_id: str | None = None
    vehicle_id: str | None = None
    data: VehicleData | None = None
    detail: str = ""


def hmac_hex(secret: str, raw: bytes, algorithm: str) -> str:
    return hmac.new(secret.encode(), raw, getattr(hashlib, algorithm)).hexdigest()
