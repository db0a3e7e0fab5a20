"""The operators' command acts on the fleet (SPEC §8): a vehicle's history, a bulk
re-drive (dry run first, a reason required, force confirmed, stop and resume, its
results), and the audit of every action, with who did it."""

from __future__ import annotations

import getpass
import json

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from api.cli import main
from settings import Settings
from store.db import Database
from store.models import StepAttempt, utcnow
from tests.helpers.store import add_vehicle, vehicle_row
from workflows import bulk


@pytest.fixture(autouse=True)
def nothing_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' database handle sends nothing to the broker here: a worker of
    another test must not run these vehicles' steps or these runs' jobs (the job's work
    is called by the tests themselves)."""
    from api import jobs

    monkeypatch.setattr(jobs, "dispatcher", lambda: None)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def cli(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def failed(db: Database, code: str = "PROVIDER_UNAVAILABLE", **fields: object) -> str:
    return add_vehicle(
        db,
        status="failed",
        failure_code=code,
        failure_retryable=code == "PROVIDER_UNAVAILABLE",
        access_token="at-never-shown",
        refresh_token="rt-never-shown",
        **fields,
    )


def test_show_prints_the_history_and_never_a_token(clean: Database) -> None:
    vehicle_id = failed(clean)
    with clean.session() as session:
        for n, outcome in ((1, "retrying"), (2, "exhausted")):
            session.add(
                StepAttempt(
                    vehicle_id=vehicle_id, step="validate", attempt=n, task_id=f"task-{n}",
                    started_at=utcnow(), ended_at=utcnow(), outcome=outcome,
                    error_code="PROVIDER_UNAVAILABLE", error="Smartcar: HTTP 503",
                    provider_calls=2, http_status=503, endpoint="/v2.0/vehicles",
                    request_id="req-1",
                )
            )  # fmt: skip
        session.commit()
    cli("vehicles", "redrive", vehicle_id, "--reason", "provider back")

    text = cli("vehicles", "show", vehicle_id)
    assert "step attempts:" in text
    assert "validate   #2  exhausted  PROVIDER_UNAVAILABLE  503 /v2.0/vehicles" in text
    assert "task task-2" in text
    assert f"{getpass.getuser()} (cli) redrive because 'provider back'" in text
    assert "connected_vehicle.pending" in text  # the state change the re-drive made
    assert "never-shown" not in text
    shown = json.loads(cli("vehicles", "show", vehicle_id, "--json"))
    assert [a["outcome"] for a in shown["history"]["attempts"]] == ["retrying", "exhausted"]
    assert shown["history"]["attempts"][0]["http_status"] == 503
    assert shown["history"]["operators"][0]["reason"] == "provider back"
    assert "never-shown" not in json.dumps(shown)


def test_a_bulk_redrive_counts_first_needs_a_reason_and_reports_each_vehicle(
    clean: Database, settings: Settings
) -> None:
    down = [failed(clean) for _ in range(3)]
    denied = failed(clean, "AUTHORIZATION_DENIED")
    failed(clean, provider="Tesla")

    dry = cli("vehicles", "redrive", "--provider", "Smartcar", "--dry-run")
    assert "would re-drive 4 failed vehicles (dry run: nothing changed)" in dry
    assert "3  PROVIDER_UNAVAILABLE" in dry and "1  AUTHORIZATION_DENIED" in dry
    assert {vehicle_row(clean, v).status for v in down} == {"failed"}

    refused = run("vehicles", "redrive", "--provider", "Smartcar")
    assert refused.exit_code == 2 and "needs a reason" in refused.stderr
    both = run("vehicles", "redrive", down[0], "--code", "PROVIDER_UNAVAILABLE")
    assert both.exit_code == 2 and "not both" in both.stderr
    # force without its confirmation: refused, nothing started
    unconfirmed = run(
        "vehicles", "redrive", "--provider", "Smartcar", "--force", "--reason", "x", stdin="n\n"
    )
    assert unconfirmed.exit_code == 1 and "not retryable?" in unconfirmed.output
    assert json.loads(cli("redrives", "list", "--json")) == []

    started = cli(
        "vehicles", "redrive", "--provider", "Smartcar", "--reason", "Smartcar outage", "--no-wait"
    )
    run_id = started.split()[2].rstrip(":")
    assert started.startswith(f"bulk re-drive {run_id}: 4 vehicles")
    # the job's work, here (the worker runs it as cv.bulk_redrive)
    assert bulk.work(clean, settings, run_id, sleep=lambda s: None) == "done"

    shown = cli("redrives", "show", run_id)
    assert "done     4/4: 3 re-driven, 0 skipped, 1 refused" in shown
    assert f"refused  {denied}: not retryable (AUTHORIZATION_DENIED): re-drive with force" in shown
    as_json = json.loads(cli("redrives", "show", run_id, "--json"))
    assert {i["vehicle_id"]: i["result"] for i in as_json["items"]} == {
        **dict.fromkeys(down, "redriven"),
        denied: "refused",
    }
    listed = cli("redrives", "list")
    assert run_id in listed and "3/4 re-driven" in listed and "provider=Smartcar" in listed
    done = run("redrives", "stop", run_id)
    assert done.exit_code == 2 and "is done: nothing to stop" in done.stderr


def test_stop_and_resume_and_the_audit_of_every_action(clean: Database, settings: Settings) -> None:
    failed(clean)
    mended = add_vehicle(clean, unreadable_at=utcnow(), unreadable_reason="InvalidToken")
    run_id = (
        cli("vehicles", "redrive", "--code", "PROVIDER_UNAVAILABLE", "--reason", "r", "--no-wait")
        .split()[2]
        .rstrip(":")
    )
    assert cli("redrives", "stop", run_id).strip() == f"{run_id}: stopped"
    assert bulk.work(clean, settings, run_id) == "stopped"
    assert cli("redrives", "resume", run_id).strip() == f"{run_id}: running"
    cli("vehicles", "unmark", mended, "--reason", "key restored")
    cli("prune", "--days", "30")

    audit = json.loads(cli("audit", "list", "--json"))
    assert [a["action"] for a in audit] == [
        "prune", "unmark", "bulk_resume", "bulk_stop", "bulk_redrive",
    ]  # fmt: skip
    me = getpass.getuser()
    assert {(a["actor"], a["via"]) for a in audit} == {(me, "cli")}
    assert audit[1]["vehicle_id"] == mended and audit[1]["reason"] == "key restored"
    assert audit[-1]["filter"] == {"status": "failed", "code": "PROVIDER_UNAVAILABLE"}
    assert audit[-1]["counts"] == {"total": 1}
    assert [
        a["action"] for a in json.loads(cli("audit", "list", "--vehicle", mended, "--json"))
    ] == ["unmark"]
    text = cli("audit", "list", "--run", run_id)
    assert "bulk_redrive" in text and "reason 'r'" in text
    bad = run("audit", "list", "--since", "last tuesday")
    assert bad.exit_code == 2 and "not a time" in bad.stderr
    with clean.session() as session:
        assert session.scalars(select(StepAttempt)).all() == []
