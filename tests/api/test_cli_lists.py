"""The operators' lists in `cv` (SPEC §8): `cv vehicles list` filters by why a vehicle
stands where it stands, refuses a bad filter with the valid values named and runs
nothing, and every list answers JSON for scripts, never with a token or a secret."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from api.cli import main
from store.db import Database
from tests.helpers.store import add_vehicle


def run(*args: str) -> Result:
    """`cv …` in this process (the same commands; no interpreter to start each time)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cli(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_the_list_filters_by_code_provider_and_time_and_answers_json(clean: Database) -> None:
    down = add_vehicle(
        clean,
        status="failed",
        failure_code="PROVIDER_UNAVAILABLE",
        failure_retryable=True,
        attempts=5,
        last_error="Smartcar: GET /vehicles answered 503",
        access_token="at-never-shown",
        refresh_token="rt-never-shown",
    )
    add_vehicle(clean, status="failed", failure_code="SCOPE_NOT_GRANTED")
    add_vehicle(clean, provider="Tesla", status="failed", failure_code="PROVIDER_UNAVAILABLE")

    out = cli(
        "vehicles", "list", "--status", "failed", "--code", "provider_unavailable",
        "--provider", "Smartcar", "--since", "2h", "--json",
    )  # fmt: skip

    listed = json.loads(out)
    assert [v["id"] for v in listed] == [down]
    assert listed[0]["failure_code"] == "PROVIDER_UNAVAILABLE"
    assert listed[0]["failure_retryable"] is True and listed[0]["attempts"] == 5
    assert "503" in listed[0]["last_error"]
    assert "never-shown" not in out
    text = cli("vehicles", "list", "--code", "PROVIDER_UNAVAILABLE", "--provider", "smartcar")
    assert down in text and "answered 503" in text and "never-shown" not in text
    assert cli("vehicles", "list", "--search", "no-such-car").strip() == ("no connected vehicles")


def test_a_bad_filter_is_refused_with_the_valid_values_and_nothing_runs(clean: Database) -> None:
    for args, said in [
        (["--code", "PROVIDER_DOWN"], "PROVIDER_UNAVAILABLE"),
        (["--provider", "Ford"], "Enode, Smartcar, Tesla, HighMobility"),
        (["--status", "broken"], "pending, authorized, failed"),
        (["--since", "yesterday"], "30m, 2h or 7d"),
        (["--search", "a\x00b"], "without control characters"),
        (["--client", "c\x07"], "without control characters"),
    ]:
        result = run("vehicles", "list", *args)
        assert result.exit_code == 2, (args, result.stdout)
        assert result.stderr.startswith("error: ") and said in result.stderr, result.stderr
        assert result.stdout == ""


def test_the_webhook_lists_answer_json(clean: Database) -> None:

    assert json.loads(cli("webhooks", "deliveries", "--json")) == []
    assert json.loads(cli("webhooks", "list", "no-such-client", "--json")) == []
