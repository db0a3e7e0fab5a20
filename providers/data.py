"""A car's live data as the service keeps it, whatever the provider: four parts, each in
the service's units (percent 0 to 100, km, kWh, kW, minutes), each with when the provider
measured it. A part is None when it was not read (its scope is not granted) or its
answer could not be read (then ``problems`` says why, without any token).

Adapters build these from their provider's answers with the converters below, each part
by its own reader (:func:`read_parts`: an odd shape costs that part, not the read); the
snapshot store and the API read them back with :meth:`VehicleData.from_json`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from providers.names import Scope

__all__ = [
    "KM_PER_MILE",
    "PARTS_OF_SCOPE",
    "PART_TYPES",
    "SHAPE_ERRORS",
    "Battery",
    "Charge",
    "Location",
    "Odometer",
    "Part",
    "VehicleData",
    "as_bool",
    "as_number",
    "fraction_to_percent",
    "miles_to_km",
    "own_words",
    "parts_for",
    "read_parts",
    "shape_problem",
    "timestamp",
]

# Which parts a scope lets the service read (SPEC §3: charge_state covers two).
PARTS_OF_SCOPE: dict[Scope, tuple[str, ...]] = {
    Scope.charge_state: ("battery", "charge"),
    Scope.location: ("location",),
    Scope.odometer: ("odometer",),
}

KM_PER_MILE = 1.609344


def parts_for(scopes: Iterable[str]) -> set[str]:
    """The parts that `scopes` (the vehicle's own) cover."""
    out: set[str] = set()
    for scope in scopes:
        try:
            out.update(PARTS_OF_SCOPE[Scope(scope)])
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Battery:
    percentage: float | None = None
    range_km: float | None = None
    capacity_kwh: float | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Charge:
    is_plugged_in: bool | None = None
    is_charging: bool | None = None
    charge_rate_kw: float | None = None
    charge_limit_percentage: float | None = None
    time_remaining_minutes: float | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Odometer:
    value_km: float
    updated_at: datetime | None = None


Part = Battery | Charge | Location | Odometer
# Each part by its name in VehicleData, and its type.
PART_TYPES: dict[str, type] = {
    "battery": Battery,
    "charge": Charge,
    "location": Location,
    "odometer": Odometer,
}


@dataclass(frozen=True)
class VehicleData:
    battery: Battery | None = None
    charge: Charge | None = None
    location: Location | None = None
    odometer: Odometer | None = None
    # Parts the provider answered in a shape this service cannot read: one line each,
    # for the log (with the vehicle's id, added by the caller); never a token.
    problems: tuple[str, ...] = field(default=(), compare=False)

    def only(self, parts: set[str]) -> VehicleData:
        """The same data with every part outside `parts` set to None."""
        dropped: dict[str, Any] = {name: None for name in PART_TYPES if name not in parts}
        return dataclasses.replace(self, **dropped)

    def merged_over(self, older: VehicleData) -> VehicleData:
        """This data over the older: a part or a field missing here keeps the older
        value (a webhook that tells of the state of charge only leaves the range and
        the location as they were)."""
        merged: dict[str, Any] = {}
        for name in PART_TYPES:
            new, old = getattr(self, name), getattr(older, name)
            if new is None or old is None:
                merged[name] = new or old
                continue
            # updated_at always the new part's: its values are of that measurement
            kept = {k: v for k, v in vars(new).items() if v is not None or k == "updated_at"}
            merged[name] = dataclasses.replace(old, **kept)
        return VehicleData(**merged, problems=self.problems)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in PART_TYPES:
            part = getattr(self, name)
            if part is None:
                out[name] = None
                continue
            values = dataclasses.asdict(part)
            stamp = values.get("updated_at")
            values["updated_at"] = stamp.isoformat() if stamp else None
            out[name] = values
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> VehicleData:
        if not raw:
            return cls()
        parts: dict[str, Any] = {}
        for name, kind in PART_TYPES.items():
            values = raw.get(name)
            if not isinstance(values, dict):
                continue
            values = dict(values)
            if values.get("updated_at"):
                values["updated_at"] = datetime.fromisoformat(values["updated_at"])
            parts[name] = kind(**values)
        return cls(**parts)


# -- reading the parts, each on its own ----------------------------------------------------------

# What a reader raises on a shape it cannot read: a key missing, a wrong type, a bad value.
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)
Problem = Callable[[str, Exception], str]


def shape_problem(where: str, exc: Exception) -> str:
    """``<where>: unexpected shape (<ExceptionType>)``: never a value of the provider's."""
    return f"{where}: unexpected shape ({type(exc).__name__})"


def own_words(where: str, exc: Exception) -> str:
    """``<where>: <the reader's message>``, for readers whose messages name the field and
    what was wrong and never a value (Enode's, High Mobility's)."""
    return f"{where}: {exc}"


def read_parts(
    parts: Iterable[str],
    readers: Mapping[str, Callable[[], Part | None]],
    *,
    problem: Problem = shape_problem,
    absent: str | None = None,
) -> VehicleData:
    """Each of `parts` that `readers` know (in name order), read by its own reader. A
    reader that raises one of :data:`SHAPE_ERRORS` leaves its part None, with a line in
    ``problems`` said by `problem`; `absent`, if given, is the line for a part its reader
    found missing (None) where the provider answers every part asked for."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    for name in sorted(set(parts) & readers.keys()):
        try:
            found[name] = readers[name]()
        except SHAPE_ERRORS as exc:
            problems.append(problem(name, exc))
            continue
        if found[name] is None and absent is not None:
            problems.append(f"{name}: {absent}")
    return VehicleData(**found, problems=tuple(problems))


# -- converters: a provider's values into ours (None when absent) --------------------------------


def as_number(value: Any) -> float | None:
    """A finite number, or None (absent, null, NaN); ValueError for anything else (a
    string, a dict, a list), so that the part is reported."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    raise ValueError(f"expected a number, got {type(value).__name__}")


def as_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected a boolean, got {type(value).__name__}")


def fraction_to_percent(value: Any) -> float | None:
    """0.8 → 80.0 (Smartcar's and High Mobility's 0 to 1 fractions)."""
    number = as_number(value)
    return None if number is None else round(number * 100, 2)


def miles_to_km(value: Any) -> float | None:
    number = as_number(value)
    return None if number is None else round(number * KM_PER_MILE, 3)


def timestamp(value: Any) -> datetime | None:
    """When the provider measured a value: an ISO 8601 string, or epoch seconds or
    milliseconds (Tesla); None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a timestamp, got a boolean")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # milliseconds since the epoch
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise ValueError(f"expected a timestamp, got {type(value).__name__}")
