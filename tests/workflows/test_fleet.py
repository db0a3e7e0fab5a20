"""The operators' filter over the fleet (workflows.fleet): what an operator types is
parsed once, refused with the valid values named, and selects exactly the vehicles it
says, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from store.db import Database
from store.models import ConnectedVehicle, utcnow
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
    # aware, in UTC, whichever way it was typed: ages and times compare with each other
    assert parse_when(text, now=NOW) == expected.replace(tzinfo=UTC)


def test_an_age_and_an_iso_time_make_one_range() -> None:
    f = FleetFilter.parse(since="2026-12-06T09:00", until="2h", now=NOW.replace(tzinfo=UTC))
    assert f.since is not None and f.until is not None and f.since < f.until
    with pytest.raises(DomainError, match="--since must be before --until"):
        FleetFilter.parse(since="1h", until="2026-12-06", now=NOW.replace(tzinfo=UTC))


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


def test_pages_by_cursor_cover_every_vehicle_once_in_order(any_db: Database) -> None:
    from workflows.fleet import decode_cursor, encode_cursor, page_query

    base = utcnow() - timedelta(hours=1)
    ids = [
        add_vehicle(
            any_db,
            status="failed",
            failure_code="PROVIDER_UNAVAILABLE",
            updated_at=base + timedelta(seconds=i // 2),  # ties: the id orders them
        )
        for i in range(7)
    ]
    f = FleetFilter.parse(status="failed", code="PROVIDER_UNAVAILABLE")
    seen: list[str] = []
    cursor = None
    with any_db.session() as session:
        while True:
            rows = list(session.scalars(page_query(f, cursor=cursor, limit=3)))
            seen += [r.id for r in rows]
            if len(rows) < 3:
                break
            cursor = decode_cursor(encode_cursor(rows[-1]))
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    with any_db.session() as session:
        found = session.scalars(select(ConnectedVehicle).where(ConnectedVehicle.id.in_(seen)))
        stamps = {r.id: r.updated_at for r in found}
    assert [stamps[v] for v in seen] == sorted(stamps.values(), reverse=True)


@pytest.mark.parametrize("text", ["not-a-cursor!", "Zm9v", "MjAyNi0xMi0wN3w=", "x" * 300])
def test_a_cursor_that_is_not_one_is_refused(text: str) -> None:
    from workflows.fleet import decode_cursor

    with pytest.raises(DomainError, match="not a cursor of this list"):
        decode_cursor(text)


def test_the_console_query_reads_its_index(clean: Database) -> None:
    from sqlalchemy import text as sql

    from workflows.fleet import page_query

    add_vehicle(clean, status="failed", failure_code="PROVIDER_UNAVAILABLE")
    f = FleetFilter.parse(status="failed", code="PROVIDER_UNAVAILABLE", provider="Smartcar")
    query = page_query(f, cursor=(NOW, "v"), limit=51)
    with clean.engine.connect() as conn:
        conn.execute(sql("SET enable_seqscan = off"))  # a tiny table: ask what it would use
        compiled = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(str(r[0]) for r in conn.execute(sql("EXPLAIN " + compiled)))
    assert "ix_connected_vehicles_fleet" in plan, plan
    assert "Sort" not in plan, plan  # read in the index's order
