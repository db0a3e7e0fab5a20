"""connectedVehicleList at constant cost: paging by an opaque cursor (`after`) beside
`page`, over an index that serves the filter and the order, loading no secret."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from starlette.testclient import TestClient

from harness.tenant import Tenant, make_tenant
from store.db import Database
from store.models import utcnow
from tests.helpers.api import error_code, gql
from tests.helpers.store import add_vehicle, bulk_vehicles, statements
from workflows.clients import create_client
from workflows.user_tokens import Principal
from workflows.vehicles import cursor_key, list_owned

LIST = """query($size: Int!, $page: Int! = 1, $after: String, $filter: ConnectedVehicleFilter) {
  connectedVehicleList(size: $size, page: $page, after: $after, filter: $filter) {
    id status authorization_url cursor created_at } }"""

START = utcnow() - timedelta(days=30)


def given_vehicles(
    tenant: Tenant, n: int, user: str = "user-1", first: int = 0, **fields: Any
) -> list[str]:
    """`n` vehicles of `user`, a minute apart, the first `first` minutes after START."""
    return [
        add_vehicle(
            tenant.db,
            client_id=tenant.client_id,
            user_id=user,
            created_at=START + timedelta(minutes=first + i),
            **fields,
        )
        for i in range(n)
    ]


def page(api: TestClient, headers: dict, size: int, **variables: Any) -> list[dict]:
    body = gql(api, LIST, {"size": size, **variables}, headers)
    assert "errors" not in body, body
    rows: list[dict] = body["data"]["connectedVehicleList"]
    return rows


def test_paging_by_cursor_sees_every_vehicle_once_while_others_are_added(
    api: TestClient, tenant: Tenant
) -> None:
    before = set(given_vehicles(tenant, 60))
    headers = tenant.headers()
    stop = threading.Event()
    added: list[str] = []

    def add_meanwhile() -> None:
        # New cars at the end, and rows older than the pages already read (an import).
        while not stop.is_set() and len(added) < 80:
            created = utcnow() if len(added) % 2 else START + timedelta(seconds=random.random())
            added.append(
                add_vehicle(
                    tenant.db, client_id=tenant.client_id, user_id="user-1", created_at=created
                )
            )

    adder = threading.Thread(target=add_meanwhile)
    adder.start()
    seen: list[str] = []
    try:
        after = None
        while True:
            rows = page(api, headers, 7, after=after)
            seen += [r["id"] for r in rows]
            if len(rows) < 7:
                break
            after = rows[-1]["cursor"]
    finally:
        stop.set()
        adder.join()

    assert len(seen) == len(set(seen)), "a vehicle was listed twice"
    assert before <= set(seen), "a vehicle was skipped"
    assert set(seen) <= before | set(added)


def test_a_cursor_page_follows_the_filter_and_page_still_works(
    api: TestClient, tenant: Tenant
) -> None:
    pending = given_vehicles(tenant, 5)
    authorized = given_vehicles(tenant, 5, first=5, status="authorized")
    headers = tenant.headers()

    first = page(api, headers, 2, filter={"status": "authorized"})
    rest = page(api, headers, 10, filter={"status": "authorized"}, after=first[-1]["cursor"])
    by_page = page(api, headers, 3, page=2)

    assert [r["id"] for r in first + rest] == authorized
    assert [r["id"] for r in by_page] == pending[3:5] + authorized[:1]


def _cursor_of(api: TestClient, tenant: Tenant, user: str = "user-1") -> str:
    return str(page(api, tenant.headers(user), 1)[0]["cursor"])


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(lambda c, other_user, other_client: "", id="empty"),
        pytest.param(lambda c, other_user, other_client: "not a cursor", id="garbage"),
        pytest.param(lambda c, other_user, other_client: c.split(".")[0], id="no mac"),
        pytest.param(lambda c, other_user, other_client: "x" + c, id="tampered"),
        pytest.param(lambda c, other_user, other_client: other_user, id="another user's"),
        pytest.param(lambda c, other_user, other_client: other_client, id="another client's"),
    ],
)
def test_a_malformed_or_foreign_cursor_is_bad_user_input(
    api: TestClient, tenant: Tenant, cursor: Any
) -> None:
    given_vehicles(tenant, 1)
    given_vehicles(tenant, 1, user="user-2")
    other = make_tenant(tenant.db, None, "Other")
    given_vehicles(other, 1)
    after = cursor(
        _cursor_of(api, tenant), _cursor_of(api, tenant, "user-2"), _cursor_of(api, other)
    )

    body = gql(api, LIST, {"size": 5, "after": after}, tenant.headers())

    assert error_code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["exception"]["status"] == 400


def test_page_and_after_together_are_bad_user_input(api: TestClient, tenant: Tenant) -> None:
    given_vehicles(tenant, 2)
    after = _cursor_of(api, tenant)
    body = gql(api, LIST, {"size": 5, "page": 2, "after": after}, tenant.headers())
    assert error_code(body) == "BAD_USER_INPUT"


SECRETS = ("access_token", "refresh_token", "auth_code", "authorization_url")


def test_a_list_loads_no_secret_but_a_pending_vehicles_authorization_url(
    api: TestClient, tenant: Tenant
) -> None:
    given_vehicles(tenant, 3, status="authorized", access_token="t", refresh_token="r")
    waiting = given_vehicles(tenant, 1, authorization_url="https://provider.example/auth?s=1")
    headers = tenant.headers()
    page(api, headers, 1)  # the caller's secret is cached from here on
    engine_db: Database = api.app.state.db  # type: ignore[attr-defined]

    with statements(engine_db) as authorized_list:
        rows = page(api, headers, 10, filter={"status": "authorized"})
    with statements(engine_db) as full_list:
        everything = page(api, headers, 10)

    assert len(rows) == 3
    assert not [s for s in authorized_list if any(c in s for c in SECRETS)]
    reading_secrets = [s for s in full_list if any(c in s for c in SECRETS)]
    assert len(reading_secrets) == 1  # the pending vehicle's URL, nothing else
    assert not any(c in reading_secrets[0] for c in SECRETS[:3])
    assert [r["authorization_url"] for r in everything if r["id"] in waiting] == [
        "https://provider.example/auth?s=1"
    ]


def _plan(db: Database, call: Any) -> str:
    """EXPLAIN of the list's own query, as list_owned sends it."""
    with statements(db) as seen, db.session() as session:
        captured: list[tuple[str, Any]] = []

        def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
            if "ORDER BY" in statement:
                captured.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", keep)
        try:
            call(session)
        finally:
            event.remove(db.engine, "before_cursor_execute", keep)
    assert seen and len(captured) == 1
    statement, parameters = captured[0]
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(row[0] for row in rows)


def test_the_list_reads_its_index_on_a_large_table(clean: Database) -> None:
    """100,000 vehicles, half of them one fleet user's: page 1 and a deep cursor's page
    (with and without the status filter) read the list's indexes, sort nothing."""
    with clean.session() as session:
        client = create_client(session, "Fleet")
    with clean.engine.begin() as conn:
        bulk_vehicles(conn, client.id, 100_000, fleet_user="fleet", pending_every=10)
        conn.execute(text("ANALYZE connected_vehicles"))
    fleet = Principal(client_id=client.id, user_id="fleet")
    key = cursor_key("k")
    with clean.session() as session:
        deep = list_owned(session, fleet, status=None, size=100, page=250, key=key)[-1]
        from workflows.vehicles import cursor_of

        after = cursor_of(deep, fleet, key)

    for status in (None, "authorized"):
        index = "ix_connected_vehicles_list_status" if status else "ix_connected_vehicles_list"
        for cursor in (None, after):
            plan = _plan(
                clean,
                lambda s, st=status, c=cursor: list_owned(
                    s, fleet, status=st, size=100, page=1, after=c, key=key
                ),
            )
            assert f"Index Scan using {index}" in plan, plan
            assert "Sort" not in plan and "Seq Scan" not in plan, plan
