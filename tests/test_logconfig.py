"""No OAuth code or state, and no token in a URL, reaches a log line (SPEC §4): the
formatters themselves redact every line and every logged exception, in both formats,
not only uvicorn's access line (which its own filter cleans first)."""

from __future__ import annotations

import contextvars
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


# -- Celery's routine lines about the housekeeping ----------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def celery_lines(level: int) -> list[tuple[str, str]]:
    """(level, message) of what Celery's worker and beat log about a housekeeping task
    and a workflow step, with the housekeeping quieted, the loggers at `level`."""
    from celery.app import trace

    names = ("celery.worker.strategy", "celery.app.trace", "celery.beat")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate, list(lg.filters)) for lg in loggers]
    lines = Lines()
    quiet = logconfig.QuietTasks({"cv.sweep"})
    for lg in loggers:
        lg.setLevel(level)
        lg.propagate = False
        lg.addHandler(lines)
        lg.filters = [quiet]
    try:
        for task in ("cv.sweep", "cv.validate_authorization"):
            context = {"id": "1", "name": task, "args": "()", "kwargs": "{}", "eta": None}
            logging.getLogger(names[0]).info(trace.LOG_RECEIVED, context, extra={"data": context})
            done = {**context, "return_value": "0", "runtime": 0.01}
            trace.info(trace.LOG_SUCCESS, done)  # (Celery's own call)
            failed = {**context, "description": "raised unexpected", "exc": "Boom()"}
            trace.logger.error(trace.LOG_FAILURE, failed)
            logging.getLogger(names[2]).info(logconfig.QuietTasks._BEAT_SENDING, task, task)
    finally:
        for lg, (lvl, propagate, filters) in zip(loggers, saved, strict=True):
            lg.removeHandler(lines)
            lg.setLevel(lvl)
            lg.propagate = propagate
            lg.filters = filters
    return [(r.levelname, r.getMessage()) for r in lines.records]


def test_celery_routine_lines_about_the_housekeeping_go_at_debug() -> None:
    at_info = celery_lines(logging.INFO)
    # the step's lines as they were; the sweep's failure too; its routine lines gone
    assert [m for _, m in at_info if "cv.sweep" in m] == [
        "Task cv.sweep[1] raised unexpected: Boom()"
    ]
    step = [(lvl, m) for lvl, m in at_info if "cv.validate_authorization" in m]
    assert [lvl for lvl, _ in step] == ["INFO", "INFO", "ERROR", "INFO"], step

    at_debug = celery_lines(logging.DEBUG)  # shown where DEBUG is, as DEBUG
    sweep = [(lvl, m) for lvl, m in at_debug if "cv.sweep" in m]
    assert [lvl for lvl, _ in sweep] == ["DEBUG", "DEBUG", "ERROR", "DEBUG"], sweep
    assert "Task cv.sweep[1] received" in sweep[0][1]


def test_beat_still_logs_its_sending_as_the_filter_reads_it() -> None:
    """The filter matches beat's line by its format: Celery's, unchanged."""
    import inspect

    from celery.beat import Scheduler

    assert logconfig.QuietTasks._BEAT_SENDING in inspect.getsource(Scheduler.apply_entry)


def test_the_workers_quiet_the_housekeeping_and_no_workflow_step() -> None:
    from workers.correlation import HOUSEKEEPING
    from workflows.registry import STEP_TASKS

    assert {"cv.relay_outbox", "cv.sweep", "cv.deliver_webhooks", "cv.prune"} == HOUSEKEEPING
    assert not HOUSEKEEPING & STEP_TASKS


# -- the access line names the GraphQL operation -------------------------------------------


def access_line(path: str, operation: str | None = None, *, noted: int = 1) -> str:
    """uvicorn's access line for `path`, as it is logged in a request whose GraphQL
    layer noted `operation` (`noted` times: 2 is a batch)."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", path, "1.1", 200),
        None,
    )
    token = logconfig.begin(request_id="req-1")
    try:
        for _ in range(noted):
            logconfig.note_operation(operation)
        assert logconfig.NameOperation().filter(record)
    finally:
        logconfig.end(token)
    return record.getMessage()


def test_the_access_line_names_the_graphql_operation() -> None:
    line = access_line("/graphql", "mutation createConnectedVehicle")
    assert line == '127.0.0.1:5000 - "POST /graphql HTTP/1.1" 200 mutation createConnectedVehicle'
    # a GET's query string (its document, its variables) is left out
    line = access_line("/graphql?query=%7BconnectedVehicle(id:%22VIN%22)%7D", "query a,b")
    assert line == '127.0.0.1:5000 - "POST /graphql?[omitted] HTTP/1.1" 200 query a,b'
    # nothing noted (unparseable), a batch, another path: nothing more said
    assert access_line("/graphql", None).endswith('HTTP/1.1" 200')
    assert access_line("/graphql", "query a", noted=2).endswith('HTTP/1.1" 200')
    assert access_line("/healthz?x=1", "query a").endswith('"POST /healthz?x=1 HTTP/1.1" 200')


def test_an_operation_noted_outside_a_request_goes_nowhere() -> None:
    def outside() -> str | None:
        logconfig.note_operation("query a")
        return logconfig.current("graphql_operation")

    assert contextvars.Context().run(outside) is None  # (a context of no request)
