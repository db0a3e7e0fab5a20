"""Cost at size: connectedVehicleList (page 1, a deep page, by cursor), the operators'
Vehicles view (failed, one code, one provider: page 1 and by cursor), one sweep pass and
the relay of a 10k-event backlog, at 10k vehicles and at each larger size, each beside
its 10k figure. Rows are bulk-inserted with SQL (PostgreSQL's generate_series): half of
them belong to one fleet user (the one listed), the rest to 20,000 others; one published
event per vehicle in the outbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from bench.record import Figure, Results, median, ratio_at_most
from bench.stack import Stack
from harness import Tenant, make_tenant
from workers.relay import relay_once
from workflows.fleet import (
    FleetFilter,
    encode_cursor,
    page_query,
    plain_columns,
)
from workflows.sweep import sweep

__all__ = ["at_sizes"]

FLEET = "fleet"
PAGE_SIZE = 100
DEEP_PAGE = 50  # rows 4,901-5,000 of the fleet user's 5,000 at 10k
BACKLOG = 10_000
# The console's question in an outage: what failed, with this code, at this provider.
CONSOLE_FILTER = FleetFilter.parse(
    status="failed", code="PROVIDER_UNAVAILABLE", provider="Smartcar"
)
CONSOLE_PAGE = 50
CONSOLE_DEEP = 20  # by cursor, after up to 20 pages (1,000 rows), as an operator paging on

INSERT_VEHICLES = """
INSERT INTO connected_vehicles (id, client_id, user_id, vehicle_id, provider, scope, label,
    status, failure_code, failure_retryable, version, attempts, created_at, updated_at,
    authorized_at)
SELECT gen_random_uuid()::text, :client,
    CASE WHEN g % 2 = 1 THEN 'fleet' ELSE 'user-' || (g % 20000) END,
    'tesla-model-3', CASE WHEN g % 3 = 0 THEN 'Enode' ELSE 'Smartcar' END,
    CAST('["location"]' AS json), 'car ' || g,
    CASE WHEN g % 50 = 0 THEN 'pending' WHEN g % 50 = 2 THEN 'failed' ELSE 'authorized' END,
    CASE WHEN g % 50 <> 2 THEN NULL
        WHEN g % 100 = 2 THEN 'PROVIDER_UNAVAILABLE' ELSE 'AUTHORIZATION_DENIED' END,
    CASE WHEN g % 50 = 2 THEN g % 100 = 2 END,
    1, 0, now() - make_interval(secs => g * 0.001), now() - make_interval(secs => g * 0.001),
    CASE WHEN g % 50 IN (0, 2) THEN NULL ELSE now() END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
"""

INSERT_EVENTS = """
INSERT INTO outbox_events (id, type, vehicle_id, client_id, payload, created_at, published_at)
SELECT gen_random_uuid()::text, :type, 'v-' || g, :client,
    CAST('{{"status": "authorized"}}' AS json), now(), {published}
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
"""

QUERY_FIELDS = "id status label vehicle_id provider created_at"


def _timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls (after one untimed call that warms caches)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


class Fleet:
    def __init__(self, s: Stack) -> None:
        self.s = s
        self.tenant: Tenant = make_tenant(s.db, None, "Fleet")
        self.headers = self.tenant.headers(FLEET)
        self.rows = 0
        self.fields = QUERY_FIELDS
        self.backlog_from = 0  # outbox seq where this size's backlog starts

    def grow_to(self, rows: int) -> None:
        with self.s.db.engine.begin() as conn:
            params = {"client": self.tenant.client_id, "first": self.rows + 1, "last": rows}
            conn.execute(text(INSERT_VEHICLES), params)
            conn.execute(
                text(INSERT_EVENTS.format(published="now()")),
                {**params, "type": "connected_vehicle.authorized"},
            )
        self.rows = rows
        self._analyze()

    def _analyze(self) -> None:
        with self.s.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("ANALYZE connected_vehicles"))
            c.execute(text("ANALYZE outbox_events"))

    def add_backlog(self) -> None:
        with self.s.db.engine.begin() as conn:
            self.backlog_from = int(
                conn.execute(text("SELECT coalesce(max(seq), 0) FROM outbox_events")).scalar_one()
            )
            conn.execute(
                text(INSERT_EVENTS.format(published="NULL")),
                {
                    "client": self.tenant.client_id,
                    "first": 1,
                    "last": BACKLOG,
                    "type": "connected_vehicle.updated",
                },
            )

    def unpublish_backlog(self) -> None:
        with self.s.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE outbox_events SET published_at = NULL WHERE seq > :seq"),
                {"seq": self.backlog_from},
            )

    def relay_backlog(self) -> float:
        """Seconds to relay the backlog (relay_once in a loop until nothing is left)."""
        self.unpublish_backlog()
        start = time.perf_counter()
        while relay_once(self.s.db, self.s.redis) > 0:
            pass
        return time.perf_counter() - start

    def page(self, arguments: str, variables: dict[str, Any] | None = None) -> list[dict]:
        body = self.s.gql(
            f"query($after: String) {{ connectedVehicleList({arguments}) {{ {self.fields} }} }}"
            if "$after" in arguments
            else f"query {{ connectedVehicleList({arguments}) {{ {self.fields} }} }}",
            self.headers,
            **(variables or {}),
        )
        if body.get("errors"):
            raise RuntimeError(f"connectedVehicleList({arguments}): {body['errors'][0]}")
        rows: list[dict] = body["data"]["connectedVehicleList"]
        if not rows:
            raise RuntimeError(f"connectedVehicleList({arguments}) is empty")
        return rows


def console_page(s: Stack, cursor: str | None, limit: int = CONSOLE_PAGE) -> list[Any]:
    """One page of the console's Vehicles view, as the Flower page reads it."""
    from workflows.fleet import decode_cursor

    query = page_query(CONSOLE_FILTER, cursor=decode_cursor(cursor), limit=limit + 1)
    with s.db.session() as session:
        rows = list(session.execute(query.options(plain_columns())).scalars())
    if not rows:
        raise RuntimeError("the Vehicles view's filter found nothing")
    return rows


def console_explain_ms(s: Stack, cursor: str | None) -> float:
    """The console's page query's execution time in PostgreSQL (EXPLAIN ANALYZE)."""
    from workflows.fleet import decode_cursor

    query = page_query(CONSOLE_FILTER, cursor=decode_cursor(cursor), limit=CONSOLE_PAGE + 1)
    with s.db.engine.connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)).scalar_one()
    if "ix_connected_vehicles_fleet" not in str(plan):
        raise RuntimeError(f"the page query does not read its index: {str(plan)[:300]}")
    return float(plan[0]["Execution Time"])


def _cursor_support(s: Stack, headers: dict[str, str]) -> tuple[bool, str | None]:
    """Whether connectedVehicleList takes `after` (asked of the schema by using it), and
    the name of a cursor field on the listed type if there is one (else the last
    vehicle's id is the cursor)."""
    tried = s.gql(
        "query($after: String) { connectedVehicleList(size: 1, after: $after) { id } }",
        headers,
        after=None,
    )
    takes_after = not any("after" in str(e.get("message", "")) for e in tried.get("errors") or [])
    fields = s.gql('{ __type(name: "ConnectedVehicle") { fields { name } } }', headers)
    names = {f["name"] for f in ((fields.get("data") or {}).get("__type") or {}).get("fields", [])}
    return takes_after, "cursor" if "cursor" in names else None


def _measure(
    results: Results,
    s: Stack,
    fleet: Fleet,
    size: int,
    repeat: int,
    takes_after: bool,
    cursor_field: str | None,
) -> dict[str, tuple[float, str]]:
    """Each figure at this size: name -> (value, unit); a failure is recorded alone."""
    figures: dict[str, tuple[float, str]] = {}

    def take(name: str, fn: Callable[[], Any], unit: str = "ms", times: int = repeat) -> None:
        try:
            figures[name] = (_timed(fn, times) * (1000 if unit == "ms" else 1), unit)
        except Exception as exc:
            results.add(Figure(f"{name} at {size:,}", None, unit, error=str(exc)[:300]))

    size_arg = f"size: {PAGE_SIZE}"
    take("connectedVehicleList page 1", lambda: fleet.page(size_arg))
    take(
        f"connectedVehicleList page {DEEP_PAGE}",
        lambda: fleet.page(f"{size_arg}, page: {DEEP_PAGE}"),
    )
    if takes_after:
        after: list[str] = []

        def by_cursor() -> None:
            if not after:  # the cursor of the last vehicle before the deep page
                last = fleet.page(f"{size_arg}, page: {DEEP_PAGE - 1}")[-1]
                after.append(last[cursor_field] if cursor_field else last["id"])
            fleet.page(f"{size_arg}, after: $after", {"after": after[0]})

        take(
            f"connectedVehicleList after the {(DEEP_PAGE - 1) * PAGE_SIZE:,}th (cursor)",
            by_cursor,
        )
    # The page as the console reads it (wall time: a few ms, most of it the driver and
    # the ORM, so noisy), and the query's own time in PostgreSQL (EXPLAIN ANALYZE's
    # execution time), which is what grows, or not, with the fleet: the goal's figure.
    cheap = max(15, repeat)
    deep: list[str] = []

    def deep_cursor() -> str:
        if not deep:  # after the rows an operator paged past (up to 1,000; a full page left)
            rows = console_page(s, None, CONSOLE_PAGE * CONSOLE_DEEP + CONSOLE_PAGE)
            at = max(0, min(len(rows) - CONSOLE_PAGE - 1, CONSOLE_PAGE * CONSOLE_DEEP - 1))
            deep.append(encode_cursor(rows[at]))
        return deep[0]

    take("Vehicles view page 1, wall", lambda: console_page(s, None), times=cheap)
    take("Vehicles view by cursor, wall", lambda: console_page(s, deep_cursor()), times=cheap)
    for name, cursor in (("page 1", lambda: None), ("by cursor", deep_cursor)):
        try:
            ms = median([console_explain_ms(s, cursor()) for _ in range(cheap)])
            figures[f"Vehicles view {name} (failed, code, provider), in PostgreSQL"] = (ms, "ms")
        except Exception as exc:
            results.add(Figure(f"Vehicles view {name} at {size:,}", None, "ms", error=str(exc)))
    take("sweep pass", lambda: sweep(s.db, s.settings))
    take(f"relay of a {BACKLOG:,}-event backlog", fleet.relay_backlog, unit="s")
    return figures


def at_sizes(results: Results, s: Stack, *, sizes: list[int], repeat: int) -> None:
    if not s.db.is_postgres:
        raise RuntimeError("the bulk insert is PostgreSQL's")
    fleet = Fleet(s)
    takes_after, cursor_field = _cursor_support(s, fleet.headers)
    if cursor_field:
        fleet.fields += f" {cursor_field}"
    base: dict[str, float] = {}
    for size in sizes:
        start = time.monotonic()
        fleet.grow_to(size)
        fleet.add_backlog()
        print(f"      {size:,} vehicles in {time.monotonic() - start:.0f}s", flush=True)
        figures = _measure(results, s, fleet, size, repeat, takes_after, cursor_field)
        for name, (value, unit) in figures.items():
            if size == sizes[0]:
                base[name] = value
            baseline = base.get(name) if size != sizes[0] else None
            results.add(
                Figure(
                    f"{name} at {size:,}",
                    value,
                    unit,
                    baseline=baseline,
                    # the console's wall times are for reading, not goals: a few ms of
                    # driver and ORM whose noise is the figure (its query's is the goal)
                    goal=ratio_at_most(1.5)
                    if baseline is not None and not name.endswith(", wall")
                    else None,
                    note=f"baseline: at {sizes[0]:,}" if baseline is not None else "",
                )
            )
    if not takes_after:
        results.add(
            Figure(
                "connectedVehicleList by cursor",
                None,
                "ms",
                error="skipped: the schema's connectedVehicleList takes no `after` yet",
            )
        )
