"""No OAuth code or state, and no token in a URL, reaches a log line (SPEC §4): the
formatters themselves redact every line and every logged exception, in both formats,
not only uvicorn's access line (which its own filter cleans first)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest

import logconfig

CALLBACK = "https://cv.example/oauth/callback?code=SECRETCODE&state=SECRETSTATE"
TOKENS = "https://api.example/v1?token=SECRETTOKEN&access_token=SECRETACCESS&x=1"
SECRETS = ("SECRETCODE", "SECRETSTATE", "SECRETTOKEN", "SECRETACCESS")


def written(fmt: str, log: Callable[[logging.Logger], None]) -> str:
    """What `log(logger)` writes through the handler that a process's logging is set up
    with (`dict_config`'s, which `configure` installs too), in format `fmt`."""
    spec = dict(logconfig.dict_config(fmt)["handlers"]["cv"])
    stream = io.StringIO()
    handler = spec.pop("()")(**spec, stream=stream)
    logger = logging.getLogger(f"cv.test.redaction.{fmt}")
    logger.propagate = False  # this handler only: not pytest's, not the root's
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def failing_call() -> None:
    try:
        raise ConnectionError(f"token exchange failed for {TOKENS}")
    except ConnectionError as exc:  # the cause is printed in the traceback too
        raise RuntimeError(f"callback failed: {CALLBACK}") from exc


def everything(logger: logging.Logger) -> None:
    logger.info("user came back to %s", CALLBACK)  # as an argument
    logger.warning(f"provider answered for {TOKENS}")  # in the message itself
    try:
        failing_call()
    except RuntimeError:
        logger.exception("callback error")  # in the exception and its cause


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_code_state_or_token_reaches_any_line_or_traceback(fmt: str) -> None:
    output = written(fmt, everything)

    for secret in SECRETS:
        assert secret not in output, (secret, output)
    # the lines were written, redacted, not dropped
    assert output.count("code=[redacted]&state=[redacted]") == 2  # message and traceback
    assert "token=[redacted]&access_token=[redacted]&x=1" in output
    assert "RuntimeError: callback failed" in output and "ConnectionError" in output
    if fmt == "json":
        lines = [json.loads(line) for line in output.splitlines()]
        assert [line["level"] for line in lines] == ["INFO", "WARNING", "ERROR"]
        assert "exc_info" in lines[2]
