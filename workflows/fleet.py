"""The fleet as operators look at it: vehicles found by why they stand where they stand
(status, failure code, provider, client, step, when it last changed) and by what
identifies them (a search for the vehicle's id, VIN, provider vehicle id or user id).

One filter, parsed once from what an operator typed: the `cv` tool's list, and the
console and bulk re-drive built on it, refuse the same bad input with the same words
(the valid values named) and select the same rows. Values are bound parameters, never
SQL text."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_

from providers.names import Provider
from store.models import ConnectedVehicle, utcnow
from workflows.errors import DomainError, ErrorCode
from workflows.machine import Status
from workflows.steps import Step

__all__ = [
    "FleetFilter",
    "count_by_code_and_provider",
    "decode_cursor",
    "encode_cursor",
    "page_query",
    "parse_when",
    "plain_columns",
    "select_vehicles",
]

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
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
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
    # aware, in UTC, as every other time here: compared with each other and with the
    # stored ones whatever the database session's time zone
    return moment.astimezone(UTC)


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
        for what, text in (("search", f.search), ("client", f.client_id)):
            # a NUL, say, which PostgreSQL cannot even compare: refused, nothing run
            if text is not None and not text.isprintable():
                raise _bad(f"a {what} is printable text, without control characters")
        if f.client_id is not None and len(f.client_id) > SEARCH_MAX:
            raise _bad(f"a client id is at most {SEARCH_MAX} characters")
        return f

    def words(self) -> dict[str, str]:
        """What is set, as `parse` reads it back (times absolute, in UTC): what a bulk
        re-drive keeps of its filter, and the audit shows."""
        out: dict[str, str] = {}
        for name in ("status", "code", "provider", "client_id", "step", "search"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value.value if isinstance(value, StrEnum) else value)
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                out[name] = moment.replace(tzinfo=None).isoformat(timespec="seconds")
        if self.unreadable:
            out["unreadable"] = "yes"
        return out

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


def plain_columns() -> Any:
    """A loader option: only the columns that are not encrypted. What operators see
    holds no secret, and a row whose secrets do not decrypt is listed all the same."""
    from sqlalchemy.orm import load_only

    from store.crypto import Encrypted

    columns = CV.__table__.columns
    plain = [getattr(CV, c.key) for c in columns if not isinstance(c.type, Encrypted)]
    return load_only(*plain, raiseload=True)


def select_vehicles(f: FleetFilter, *, limit: int) -> Select[ConnectedVehicle]:
    """The vehicles `f` selects, most recently changed first."""
    return (
        select(CV).where(*f.conditions()).order_by(CV.updated_at.desc(), CV.id.desc()).limit(limit)
    )


# -- the console's pages: by cursor, newest change first ----------------------------------


def encode_cursor(v: ConnectedVehicle) -> str:
    """Where the next page starts: after this vehicle, in the list's order."""
    moment = v.updated_at.replace(tzinfo=None).isoformat()
    return base64.urlsafe_b64encode(f"{moment}|{v.id}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[datetime, str] | None:
    """A cursor as a page link carries it; a clear refusal when it is not one."""
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        moment, vehicle_id = raw.split("|", 1)
        when = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad("not a cursor of this list: start from its first page") from None
    if not vehicle_id or len(vehicle_id) > 36:
        raise _bad("not a cursor of this list: start from its first page")
    return when, vehicle_id


def page_query(
    f: FleetFilter, *, cursor: tuple[datetime, str] | None, limit: int
) -> Select[ConnectedVehicle]:
    """One page of `f`'s vehicles (ix_connected_vehicles_fleet for a failure code and a
    provider): the rows after `cursor`, newest change first; read `limit` + 1 to know
    whether there is a next page."""
    query = select_vehicles(f, limit=limit)
    if cursor is not None:
        query = query.where(tuple_(CV.updated_at, CV.id) < tuple_(cursor[0], cursor[1]))
    return query


def count_by_code_and_provider(f: FleetFilter) -> Select[str | None, str, int]:
    """How many of `f`'s vehicles, by failure code and provider: what failed, and why."""
    return (
        select(CV.failure_code, CV.provider, func.count())
        .where(*f.conditions())
        .group_by(CV.failure_code, CV.provider)
        .order_by(func.count().desc())
    )
