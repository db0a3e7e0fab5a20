"""The store on both databases: secrets encrypted at rest, the catalogue, UTC times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from store.catalogue import SHIPPED, load_catalogue
from store.db import Database
from store.models import CatalogueVehicle, Client
from workflows.clients import create_client


def test_secrets_are_encrypted_at_rest(any_db: Database) -> None:
    with any_db.session() as session:
        client = create_client(session, "Acme")
        secret = client.signing_secret
    with any_db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT signing_secret FROM clients WHERE id = :id"), {"id": client.id}
        ).scalar_one()
    assert secret not in stored
    with any_db.session() as session:
        again = session.get(Client, client.id)
        assert again is not None and again.signing_secret == secret


def test_times_come_back_in_utc(any_db: Database) -> None:
    with any_db.session() as session:
        client = create_client(session, "Acme")
    with any_db.session() as session:
        again = session.get(Client, client.id)
        assert again is not None
        assert again.created_at.utcoffset() is not None
        assert again.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_the_shipped_catalogue_is_loaded_and_reloading_is_harmless(any_db: Database) -> None:
    shipped = json.loads(SHIPPED.read_text())
    with any_db.session() as session:
        assert load_catalogue(session) == len(shipped)
        assert session.query(CatalogueVehicle).count() == len(shipped)
        model3 = session.get(CatalogueVehicle, "tesla-model-3")
        assert model3 is not None and "Smartcar" in model3.providers


def test_operators_extend_the_catalogue_and_bad_files_are_refused(
    any_db: Database, tmp_path: Path
) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps([{"id": "fiat-500e", "make": "Fiat", "model": "500e", "providers": ["Enode"]}])
    )
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"id": "x", "make": "X"}]))
    with any_db.session() as session:
        assert load_catalogue(session, extra) == 1
        assert session.get(CatalogueVehicle, "fiat-500e") is not None
        with pytest.raises(ValueError, match="lacks model, providers"):
            load_catalogue(session, broken)
        session.rollback()
        assert session.get(CatalogueVehicle, "x") is None
        session.delete(session.get(CatalogueVehicle, "fiat-500e"))
        session.commit()


def test_the_migrations_build_what_the_models_describe(any_db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.models import Base

    with any_db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_an_old_sqlite_database_with_rows_upgrades(tmp_path: Path) -> None:
    """Migrations run on a database that holds data (SQLite's batch copies included)."""
    from sqlalchemy import create_engine

    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO clients VALUES ('c1', 'Old', 'x', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO catalogue_vehicles"
                " VALUES ('car', 'Tesla', 'Model 3', NULL, NULL, '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO connected_vehicles (id, client_id, user_id, vehicle_id, provider,"
                " scope, status, version, created_at, updated_at, validation_requested_at)"
                " VALUES ('v1', 'c1', 'u', 'car', 'Smartcar', '[]', 'pending', 1,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO oauth_states (state_hash, vehicle_id, client_id, created_at,"
                " expires_at) VALUES ('h', 'v1', 'c1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()

    upgrade(url)

    engine = create_engine(url)
    with engine.connect() as conn:
        step = conn.execute(text("SELECT step FROM connected_vehicles WHERE id = 'v1'"))
        assert step.scalar_one() == "validate"  # the pending validation became a step
        assert conn.execute(text("SELECT count(*) FROM oauth_states")).scalar_one() == 1
    engine.dispose()


def test_the_authorization_url_and_its_state_are_encrypted_at_rest(any_db: Database) -> None:
    from tests.helpers.store import add_vehicle, vehicle_row

    url = "https://connect.example/authorize?state=the-raw-state"
    vehicle_id = add_vehicle(any_db, authorization_url=url)
    with any_db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT authorization_url FROM connected_vehicles WHERE id = :id"),
            {"id": vehicle_id},
        ).scalar_one()
    assert "the-raw-state" not in stored
    assert vehicle_row(any_db, vehicle_id).authorization_url == url


def test_events_written_before_0007_lose_their_authorization_url(tmp_path: Path) -> None:
    """Events already in the outbox (and webhook bodies not yet sent) carried the URL and
    its OAuth state: the migration takes it out of every one, and says it was ready."""
    import json

    from sqlalchemy import create_engine

    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    upgrade(url, "0006")
    leaked = "https://provider/authorize?state=REPLAYABLE"
    view = {"id": "v1", "status": "pending", "authorization_url": leaked}
    body = json.dumps({"type": "connected_vehicle.created", "timestamp": "t", "data": view})
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO clients VALUES ('c1', 'Old', 'x', CURRENT_TIMESTAMP)"))
        for seq in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO outbox_events (seq, id, type, vehicle_id, client_id, payload,"
                    " created_at) VALUES (:seq, :id, 'connected_vehicle.created', 'v1', 'c1',"
                    " :payload, CURRENT_TIMESTAMP)"
                ),
                {"seq": seq, "id": f"e{seq}", "payload": json.dumps(view)},
            )
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, client_id, url, secret, event_types, enabled,"
                " created_at) VALUES ('w1', 'c1', 'https://c', 'x', '[]', 1, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body,"
                " status, attempts, created_at, updated_at) VALUES ('d1', 'w1', 'e1',"
                " 'connected_vehicle.created', :body, 'pending', 0, CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP)"
            ),
            {"body": body},
        )
    engine.dispose()

    upgrade(url)

    engine = create_engine(url)
    with engine.connect() as conn:
        payloads = [
            json.loads(p) for p in conn.execute(text("SELECT payload FROM outbox_events")).scalars()
        ]
        bodies = [
            json.loads(b)
            for b in conn.execute(text("SELECT body FROM webhook_deliveries")).scalars()
        ]
    engine.dispose()
    assert "REPLAYABLE" not in json.dumps([payloads, bodies])
    assert [p["authorization_ready"] for p in payloads] == [True, True]
    assert bodies[0]["data"]["authorization_ready"] is True
