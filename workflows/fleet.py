"""The fleet as operators look at it: vehicles found by why they stand where they stand
(status, failure code, provider, client, step, when it last changed) and by what
identifies them (a search for the vehicle's id, VIN, provider vehicle id or user id).

One filter, parsed once from what an operator typed: the `cv` tool's list, and the
console and bulk re-drive built on it, refuse the same bad input with the same words
(the valid values named) and select the same rows. Values are bound parameters, never
SQL text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, or_, select

from providers.names import Provider
from store.models import ConnectedVehicle, utcnow
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status
from workflows.steps import Step

__all__ = ["FleetFilter", "parse_when", "select_vehicles"]

CV = ConnectedVehicle
E = TypeVar("E", bound=StrEnum)

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SEARCH_MAX = 200  # longer than any id, VIN or user id the service stores


def _bad(message: str) -> DomainError:
    return DomainError(ErrorCode.BAD_USER_INPUT, message=message)


def _one_of(value: str | None, kind: type[E], what: str) -> E | None:
    """`value` as a member of `kind`, matched without regard to case; a clear refusal
    naming every valid value otherwise."""
    if value is None or not value.strip():
        return None
    wanted = value.strip().casefold()
    for member in kind:
        if member.value.casefold() == wanted:
            return member
    valid = ", ".join(m.value for m in kind)
    raise _bad(f"unknown {what} {value!r}: one of {valid}")


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A moment an operator typed: an age back from now (`90s`, `30m`, `2h`, `7d`, `1w`)
    or an ISO 8601 date or time (UTC unless it says otherwise)."""
    if text is None or not text.strip():
        return None
    now = now or utcnow()
    age = _AGE.match(text)
    if age:
        return now - timedelta(seconds=float(age.group(1)) * _UNITS[age.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad(
            f"not a time: {text!r} (an age such as 30m, 2h or 7d, or an ISO 8601 time "
            "such as 2026-12-07T09:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None)  # stored naive, in UTC


@dataclass(frozen=True)
class FleetFilter:
    """Which vehicles: every field that is set must hold (None: any)."""

    status: Status | None = None
    code: ErrorCode | None = None
    provider: Provider | None = None
    client_id: str | None = None
    step: Step | None = None
    since: datetime | None = None  # last changed at or after (updated_at, UTC)
    until: datetime | None = None  # last changed before
    search: str | None = None  # a vehicle id, VIN, provider vehicle id or user id
    unreadable: bool = False  # only rows the service could not read

    @classmethod
    def parse(
        cls,
        *,
        status: str | None = None,
        code: str | None = None,
        provider: str | None = None,
        client_id: str | None = None,
        step: str | None = None,
        since: str | None = None,
        until: str | None = None,
        search: str | None = None,
        unreadable: bool = False,
        now: datetime | None = None,
    ) -> FleetFilter:
        """From an operator's words; DomainError (BAD_USER_INPUT) names what is wrong."""
        now = now or utcnow()
        f = cls(
            status=_one_of(status, Status, "status"),
            code=_one_of(code, ErrorCode, "failure code"),
            provider=_one_of(provider, Provider, "provider"),
            client_id=(client_id or "").strip() or None,
            step=_one_of(step, Step, "step"),
            since=parse_when(since, now=now),
            until=parse_when(until, now=now),
            search=(search or "").strip() or None,
            unreadable=unreadable,
        )
        if f.since is not None and f.until is not None and f.since >= f.until:
            raise _bad("--since must be before --until")
        if f.search is not None and len(f.search) > SEARCH_MAX:
            raise _bad(f"a search is at most {SEARCH_MAX} characters")
        return f

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.status is not None:
            where.append(CV.status == self.status.value)
        if self.code is not None:
            where.append(CV.failure_code == self.code.value)
        if self.provider is not None:
            where.append(CV.provider == self.provider.value)
        if self.client_id is not None:
            where.append(CV.client_id == self.client_id)
        if self.step is not None:
            where.append(CV.step == self.step.value)
        if self.since is not None:
            where.append(CV.updated_at >= self.since)
        if self.until is not None:
            where.append(CV.updated_at < self.until)
        if self.search is not None:
            s = self.search
            where.append(
                or_(
                    CV.id == s,
                    CV.vin.in_({s, s.upper()}),  # as the provider gave it, or upper case
                    CV.provider_vehicle_id == s,
                    CV.user_id == s,
                )
            )
        if self.unreadable:
            where.append(CV.unreadable_at.is_not(None))
        return where


def select_vehicles(f: FleetFilter, *, limit: int) -> Select[ConnectedVehicle]:
    """The vehicles `f` selects, most recently changed first."""
    return (
        select(CV).where(*f.conditions()).order_by(CV.updated_at.desc(), CV.id.desc()).limit(limit)
    )
