"""One row the service cannot read fails alone (SPEC §6): a vehicle written under a key
the service lacks is marked, and the sweep, the lists and the jobs go on around it."""

from __future__ import annotations

import functools
import os
from datetime import timedelta

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from harness import cli
from harness.tenant import Tenant
from settings import Settings
from store.db import Database
from store.models import utcnow
from tests.helpers.api import gql
from tests.helpers.store import add_vehicle, vehicle_row, written_under_another_key
from tests.helpers.wait import wait_until
from workflows.sweep import sweep

NOW = utcnow()


def test_the_sweep_goes_on_around_a_row_it_cannot_read(clean: Database, settings: Settings) -> None:
    """The sweep reads no secret it does not need: a row whose every secret is foreign
    is swept like the others (its abandoned claim interrupted), and the rows around it
    too. (The probe saw 5 of 5 sweeps raise on such a row.)"""
    long_ago = NOW - timedelta(hours=2)
    bad = add_vehicle(
        clean,
        step="validate",
        step_due_at=long_ago,
        code_claimed_at=long_ago,
        auth_code="c",
        authorization_url="https://p/x",
    )
    for column in ("auth_code", "authorization_url"):
        written_under_another_key(clean, bad, column)
    stalled = add_vehicle(clean, step="validate", step_due_at=long_ago)
    expired = add_vehicle(clean, created_at=long_ago, pending_since=long_ago)

    report = sweep(clean, settings, now=NOW)

    assert report.claims_interrupted == 1 and report.expired == 1
    with clean.engine.connect() as conn:  # (its URL still does not decrypt)
        failure = conn.execute(
            text("SELECT failure_code FROM connected_vehicles WHERE id = :id"), {"id": bad}
        ).scalar_one()
    assert failure == "AUTHORIZATION_INTERRUPTED"
    assert (stalled, "validate") in set(report.redrive)
    assert vehicle_row(clean, expired).failure_code == "AUTHORIZATION_EXPIRED"


def test_a_row_that_fails_a_pass_is_marked_and_skipped(clean: Database) -> None:
    """Where a pass must read a row and cannot, that row alone is rolled back and
    marked (why, never a value of it); the pass goes on and the next one skips it."""
    from workflows.machine import Lifecycle
    from workflows.unreadable import alone

    bad = add_vehicle(clean, auth_code="c", authorization_url="https://p/x")
    written_under_another_key(clean, bad, "auth_code")
    good = add_vehicle(clean, label="before")
    with clean.session() as session:
        from sqlalchemy.orm import defer

        from store.models import ConnectedVehicle

        query = session.query(ConnectedVehicle).options(defer(ConnectedVehicle.auth_code))
        rows = {v.id: v for v in query.all()}  # the code is read when touched, as the sweep's

        def touch(vehicle_id: str) -> None:
            vehicle = rows[vehicle_id]
            Lifecycle(None, vehicle).may("claim")  # reads the code
            vehicle.label = "swept"

        results = [alone(session, vid, functools.partial(touch, vid)) for vid in (bad, good)]
        session.commit()

    assert results == [False, True]
    assert vehicle_row(clean, good).label == "swept"
    with clean.engine.connect() as conn:
        marked = conn.execute(
            text("SELECT unreadable_at, unreadable_reason FROM connected_vehicles WHERE id = :id"),
            {"id": bad},
        ).one()
    assert marked.unreadable_at is not None
    assert "SecretKeyError" in marked.unreadable_reason
    assert "VALUE" not in marked.unreadable_reason


def test_a_list_answers_around_a_row_it_cannot_read(
    api: TestClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    good = add_vehicle(
        tenant.db, client_id=tenant.client_id, user_id="user-1", authorization_url="https://p/ok"
    )
    bad = add_vehicle(
        tenant.db, client_id=tenant.client_id, user_id="user-1", authorization_url="https://p/x"
    )
    written_under_another_key(tenant.db, bad, "authorization_url")

    body = gql(api, "{ connectedVehicleList { id authorization_url } }", headers=tenant.headers())

    assert "errors" not in body, body
    listed = {v["id"]: v["authorization_url"] for v in body["data"]["connectedVehicleList"]}
    assert listed == {good: "https://p/ok", bad: None}
    assert any(bad in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("worker")
def test_a_job_marks_its_row_and_the_worker_goes_on(clean: Database, tenant: Tenant) -> None:
    from workers.app import app

    bad = add_vehicle(
        clean, client_id=tenant.client_id, step="validate", step_due_at=NOW, auth_code="c"
    )
    written_under_another_key(clean, bad, "auth_code")

    app.send_task("cv.validate_authorization", args=[bad])

    env = dict(os.environ)
    wait_until(lambda: "unreadable since" in cli("vehicles", "list", "--unreadable", env=env))
    listed = cli("vehicles", "list", "--unreadable", env=env)
    assert bad in listed and "SecretKeyError" in listed
    assert "no longer marked" in cli("vehicles", "unmark", bad, env=env)
    assert "no connected vehicles" in cli("vehicles", "list", "--unreadable", env=env)
