"""Rows written straight to the store and read back, without the API: vehicles in any
state, their events, every table's count, the statements an engine runs, a value under
a key the service lacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Connection, event, func, select, text

from harness.tenant import Tenant
from providers.fakes.browser import consent
from providers.names import Provider
from settings import Settings
from store.db import Database
from store.models import ConnectedVehicle, OutboxEvent, StepAttempt, utcnow
from workflows.clients import create_client

__all__ = [
    "FOREIGN",
    "add_vehicle",
    "bulk_vehicles",
    "events_of",
    "pending_with_code",
    "row_counts",
    "statements",
    "vehicle_row",
    "written_under_another_key",
]

FOREIGN = Fernet(Fernet.generate_key())  # a key this service does not have


def add_vehicle(db: Database, **fields: Any) -> str:
    """A connected vehicle of a new client, written straight to the store: a Tesla Model 3
    at Smartcar, `pending`, unless `fields` say otherwise."""
    with db.session() as session:
        client_id = fields.pop("client_id", None) or create_client(session, "Acme").id
        row = ConnectedVehicle(
            **{
                "client_id": client_id,
                "user_id": "u1",
                "vehicle_id": "tesla-model-3",
                "provider": "Smartcar",
                "scope": ["location"],
                "status": "pending",
                **fields,
            }
        )
        session.add(row)
        session.commit()
        return row.id


def bulk_vehicles(
    conn: Connection, client_id: str, count: int, *, fleet_user: str | None, pending_every: int
) -> None:
    """`count` vehicles of one client in one statement (PostgreSQL), one a second apart,
    every `pending_every`th pending and the rest authorized; every other one belongs to
    `fleet_user` when given, the others each to a user of their own."""
    user = "CASE WHEN i % 2 = 0 THEN :fleet ELSE 'u' || i END" if fleet_user else "'u' || i"
    conn.execute(
        text(
            f"""
            INSERT INTO connected_vehicles
              (id, client_id, user_id, vehicle_id, provider, scope, status, version,
               attempts, created_at, updated_at)
            SELECT gen_random_uuid()::text, :client, {user}, 'tesla-model-3',
                   'Smartcar', '[]', CASE WHEN i % :every = 0 THEN 'pending'
                   ELSE 'authorized' END, 1, 0, now() - (i || ' seconds')::interval, now()
            FROM generate_series(1, :count) AS i
            """
        ),
        {"client": client_id, "fleet": fleet_user, "every": pending_every, "count": count},
    )


def vehicle_row(db: Database, vehicle_id: str) -> ConnectedVehicle:
    with db.session() as session:
        row = session.get(ConnectedVehicle, vehicle_id)
        assert row is not None
        return row


def events_of(db: Database, vehicle_id: str) -> list[str]:
    with db.session() as session:
        stmt = (
            select(OutboxEvent.type)
            .where(OutboxEvent.vehicle_id == vehicle_id)
            .order_by(OutboxEvent.seq)
        )
        return list(session.execute(stmt).scalars())


def attempts_of(db: Database, vehicle_id: str) -> list[StepAttempt]:
    """The vehicle's recorded step attempts, oldest first."""
    with db.session() as session:
        query = select(StepAttempt).where(StepAttempt.vehicle_id == vehicle_id)
        return list(session.scalars(query.order_by(StepAttempt.id)))


def row_counts(db: Database) -> dict[str, int]:
    from store.models import Base

    with db.session() as session:
        return {
            name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
            if name != "worker_heartbeats"  # the workers' liveness, not data
        }


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement the engine runs inside the block, in order."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def written_under_another_key(db: Database, vehicle_id: str, column: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE connected_vehicles SET {column} = :v WHERE id = :id"),
            {"v": FOREIGN.encrypt(b"tok-VALUE-123").decode(), "id": vehicle_id},
        )


def pending_with_code(db: Database, settings: Settings, tenant: Tenant) -> tuple[str, str]:
    """A pending vehicle of the tenant's whose user consented at the fake Smartcar, the
    code received and not yet exchanged; its id and the code."""
    from urllib.parse import parse_qs, urlsplit

    from workflows import authorization
    from workflows.user_tokens import Principal

    with db.session() as session:
        vehicle = authorization.create_connected_vehicle(
            session,
            settings,
            Principal(tenant.client_id, "u1"),
            vehicle_id="tesla-model-3",
            provider=Provider.Smartcar,
            label=None,
            redirect_uri=None,
            scope=None,
        )
    assert vehicle.authorization_url is not None
    code = parse_qs(urlsplit(consent(vehicle.authorization_url)).query)["code"][0]
    with db.session() as session:
        row = session.get(ConnectedVehicle, vehicle.id)
        assert row is not None
        row.auth_code = code
        row.code_received_at = utcnow()
        session.commit()
    return vehicle.id, code
