"""The operators' filter over the fleet (workflows.fleet): what an operator types is
parsed once, refused with the valid values named, and selects exactly the vehicles it
says, on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from store.db import Database
from store.models import utcnow
from tests.helpers.store import add_vehicle
from workflows.errors import DomainError, ErrorCode
from workflows.fleet import FleetFilter, parse_when, select_vehicles
from workflows.machine import Status

NOW = datetime(2026, 12, 7, 12, 0, 0)


def test_names_are_matched_without_regard_to_case() -> None:
    f = FleetFilter.parse(
        status="FAILED", code="provider_unavailable", provider="smartcar", step="Validate"
    )

    assert (f.status, f.code, f.provider, f.step) == (
        Status.failed,
        ErrorCode.PROVIDER_UNAVAILABLE,
        "Smartcar",
        "validate",
    )


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("status", "broken", "pending_removal"),
        ("code", "PROVIDER_DOWN", "PROVIDER_UNAVAILABLE"),
        ("provider", "Ford", "HighMobility"),
        ("step", "wash", "validate"),
    ],
)
def test_an_unknown_value_is_refused_with_the_valid_ones_named(
    field: str, value: str, named: str
) -> None:
    with pytest.raises(DomainError) as refused:
        FleetFilter.parse(**{field: value})  # type: ignore[arg-type]

    assert refused.value.code == ErrorCode.BAD_USER_INPUT
    assert repr(value) in refused.value.message and named in refused.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1.5d", NOW - timedelta(hours=36)),
        ("1w", NOW - timedelta(days=7)),
        ("2026-12-06", datetime(2026, 12, 6)),
        ("2026-12-06T09:30", datetime(2026, 12, 6, 9, 30)),
        ("2026-12-06T10:30+01:00", datetime(2026, 12, 6, 9, 30)),  # to UTC
    ],
)
def test_a_time_is_an_age_or_an_iso_time(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-2h", "12/06/2026", "2026-13-01"])
def test_a_time_that_is_neither_is_refused_with_examples(text: str) -> None:
    with pytest.raises(DomainError) as refused:
        parse_when(text, now=NOW)

    assert "30m, 2h or 7d" in refused.value.message and "ISO 8601" in refused.value.message


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(DomainError, match="--since must be before --until"):
        FleetFilter.parse(since="1h", until="2h", now=NOW)


def test_the_filter_selects_exactly_what_it_says(clean: Database) -> None:
    old = utcnow() - timedelta(days=3)
    down = add_vehicle(
        clean, status="failed", failure_code="PROVIDER_UNAVAILABLE", failure_retryable=True
    )
    client_id = _client_of(clean, down)
    other_code = add_vehicle(
        clean, client_id=client_id, status="failed", failure_code="SCOPE_NOT_GRANTED"
    )
    other_provider = add_vehicle(
        clean,
        client_id=client_id,
        provider="Tesla",
        status="failed",
        failure_code="PROVIDER_UNAVAILABLE",
    )
    long_ago = add_vehicle(
        clean,
        client_id=client_id,
        status="failed",
        failure_code="PROVIDER_UNAVAILABLE",
        updated_at=old,
    )
    other_client = add_vehicle(clean, status="failed", failure_code="PROVIDER_UNAVAILABLE")
    found = add_vehicle(
        clean,
        client_id=client_id,
        status="authorized",
        vin="5YJ3E1EA7NF000042",
        provider_vehicle_id="pv-42",
        user_id="fleet-user-42",
    )

    def ids(**words: str) -> set[str]:
        f = FleetFilter.parse(**words)  # type: ignore[arg-type]
        with clean.session() as session:
            return {v.id for v in session.execute(select_vehicles(f, limit=100)).scalars()}

    assert ids(status="failed", code="PROVIDER_UNAVAILABLE", provider="Smartcar") == {
        down,
        long_ago,
        other_client,
    }
    assert ids(code="PROVIDER_UNAVAILABLE", provider="smartcar", client_id=client_id) == {
        down,
        long_ago,
    }
    assert ids(code="PROVIDER_UNAVAILABLE", client_id=client_id, since="2d") == {
        down,
        other_provider,
    }
    assert ids(client_id=client_id, until="2d") == {long_ago}
    assert ids(code="SCOPE_NOT_GRANTED") == {other_code}
    for term in (found, "5YJ3E1EA7NF000042", "5yj3e1ea7nf000042", "pv-42", "fleet-user-42"):
        assert ids(search=term) == {found}, term
    # search input is data: quotes and SQL find nothing, and break nothing
    assert ids(search="' OR 1=1 --") == set()
    assert ids(search="<script>alert(1)</script>") == set()


def _client_of(db: Database, vehicle_id: str) -> str:
    from tests.helpers.store import vehicle_row

    return vehicle_row(db, vehicle_id).client_id
