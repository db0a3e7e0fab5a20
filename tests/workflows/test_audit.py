"""Each operator action is a row and a JSON log line with the same fields."""

from __future__ import annotations

import io
import json
import logging

from sqlalchemy import select

import logconfig
from store.db import Database
from store.models import OperatorAction
from workflows.audit import Action, Who, record_now


def test_an_action_is_a_row_and_a_json_log_line(any_db: Database) -> None:
    out = io.StringIO()
    handler = logconfig.make_handler("json", out)
    logger = logging.getLogger("workflows.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        record_now(
            any_db,
            Who("ana", "flower"),
            Action.redrive,
            vehicle_id="v-1",
            reason="provider back",
            outcome="forced",
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)

    with any_db.session() as session:
        row = session.scalars(select(OperatorAction)).one()
    assert (row.actor, row.via, row.action, row.vehicle_id) == ("ana", "flower", "redrive", "v-1")
    assert (row.reason, row.outcome) == ("provider back", "forced") and row.at is not None
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["message"] == "operator ana (flower): redrive v-1: forced"
    assert line["audit"] == {
        "actor": "ana",
        "via": "flower",
        "action": "redrive",
        "vehicle_id": "v-1",
        "reason": "provider back",
        "outcome": "forced",
    }


def test_the_command_names_its_operating_system_user(monkeypatch) -> None:
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "root")
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert Who.os_user() == Who("root", "cli")
    monkeypatch.setenv("SUDO_USER", "ana")
    assert Who.os_user() == Who("ana (as root)", "cli")
