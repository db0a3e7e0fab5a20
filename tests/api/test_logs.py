"""No OAuth code or state reaches the access log; the web's lines are JSON (or text with
CV_LOG_FORMAT=text), each with its request id; a GraphQL request's access line names its
operation, never its values."""

from __future__ import annotations

import json
import logging
import time

import httpx

from harness import free_port, path_env, process, wait_for
from harness.procs import BIN
from logconfig import RedactSecrets
from store.db import Database


def test_the_callback_query_is_redacted_in_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            "/oauth/callback?code=SECRETCODE&state=SECRETSTATE&x=1",
            "1.1",
            303,
        ),
        None,
    )
    RedactSecrets().filter(record)
    line = record.getMessage()
    assert "SECRETCODE" not in line and "SECRETSTATE" not in line
    assert "/oauth/callback?code=[redacted]&state=[redacted]&x=1" in line


# -- the web's lines, as its process writes them ------------------------------------------

ODD_ID = "forged id\\u2028<b>" + "x" * 80


def web_lines(fmt: str | None) -> tuple[list[httpx.Response], str]:
    """Start the Procfile's `web` (`CV_LOG_FORMAT` = `fmt`, unset: the default), send it
    a callback carrying a code and a state and a request id, then one with an odd
    request id; its answers and its output."""
    port = free_port()
    env = {k: v for k, v in path_env().items() if k != "CV_LOG_FORMAT"}
    if fmt is not None:
        env["CV_LOG_FORMAT"] = fmt
    argv = [str(BIN / "python"), "-m", "api.serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with process("web", argv, env, show=False) as web:
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, "the web")
        answers = [
            httpx.get(
                f"{base}/oauth/callback?code=SECRETCODE&state=SECRETSTATE",
                headers={"x-request-id": "req-42"},
            ),
            httpx.get(f"{base}/healthz", headers={"x-request-id": ODD_ID}),
        ]
        time.sleep(0.3)  # the access log is written as the answer goes
        output = web.output(tail=100_000)
    return answers, output


def test_the_web_logs_json_lines_with_the_request_id_and_no_secret(db: Database) -> None:
    answers, output = web_lines(None)

    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    callback = next(line for line in access if "/oauth/callback" in line["message"])
    assert callback["request_id"] == "req-42" == answers[0].headers["x-request-id"]
    assert "code=[redacted]&state=[redacted]" in callback["message"]
    assert {"time", "level", "logger", "message"} <= callback.keys()
    assert "SECRETCODE" not in output and "SECRETSTATE" not in output
    # an odd request id is replaced, and never written
    replaced = answers[1].headers["x-request-id"]
    assert replaced != ODD_ID and any(line.get("request_id") == replaced for line in access)
    assert "forged" not in output


def test_cv_log_format_text_gives_text_lines(db: Database) -> None:
    _, output = web_lines("text")

    line = next(line for line in output.splitlines() if "/oauth/callback" in line)
    assert line.endswith("[request_id=req-42]"), line
    assert "code=[redacted]&state=[redacted]" in line and "SECRETCODE" not in output
    assert not line.startswith("{")


# -- the access line names the GraphQL operation -------------------------------------------


def test_the_access_line_names_the_graphql_operation_never_its_values(db: Database) -> None:
    """The web's access line of a GraphQL request says its kind and root fields, from the
    parse the request already had: never a variable, an argument or a name outside the
    schema; a GET's query string is left out; unparseable or batched: nothing added."""
    port = free_port()
    env = {k: v for k, v in path_env().items() if k != "CV_LOG_FORMAT"}
    argv = [str(BIN / "python"), "-m", "api.serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    mutation = "mutation M($x: ID!) { authorizeConnectedVehicle(input: {id: $x}) { id } }"
    two_fields = '{ vehicleList { id } connectedVehicle(id: "SECRETARG") { id } }'
    posted: list[tuple[object, str]] = [
        ({"query": mutation, "variables": {"x": "SECRETVAR"}}, "secret-var"),
        ({"query": "{ madeUpField }"}, "unknown"),
        ({"query": "{ connectedVehicle("}, "unparseable"),
        ([{"query": "{ vehicleList { id } }"}] * 2, "batch"),
    ]
    with process("web", argv, env, show=False) as web:
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, "the web")
        for body, request_id in posted:
            httpx.post(f"{base}/graphql", json=body, headers={"x-request-id": request_id})
        httpx.get(
            f"{base}/graphql", params={"query": two_fields}, headers={"x-request-id": "two-fields"}
        )
        time.sleep(0.3)  # the access log is written as the answer goes
        output = web.output(tail=100_000)

    lines = [json.loads(line) for line in output.splitlines()]
    access = {
        line["request_id"]: line["message"]
        for line in lines
        if line["logger"] == "uvicorn.access" and "request_id" in line
    }
    assert access["secret-var"].endswith(
        '"POST /graphql HTTP/1.1" 200 mutation authorizeConnectedVehicle'
    )
    assert access["two-fields"].endswith(
        '"GET /graphql?[omitted] HTTP/1.1" 200 query vehicleList,connectedVehicle'
    )
    for nothing in ("unknown", "unparseable", "batch"):  # nothing more said
        assert access[nothing].split('"')[1] == "POST /graphql HTTP/1.1", access[nothing]
        assert access[nothing].rsplit('" ', 1)[1].isdigit(), access[nothing]
    assert "SECRETVAR" not in output and "SECRETARG" not in output
    assert "madeUpField" not in output
