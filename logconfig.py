"""Every process's logging: one line per record, JSON by default (``CV_LOG_FORMAT=text``
for local use), each line carrying the request id and, when known, the vehicle and the
client it is about; secrets redacted in every format.

The ids live in one context variable per unit of work: the web's middleware
(api.requestid) opens one per request, a worker opens one per task from the message's
headers (workers.correlation), and the code that learns who or what the work is about
adds to it (:func:`bind`). The context is copied into the threads the API runs its
database work in and is per greenlet under gevent, so a line logged anywhere in that work
carries the ids. Outbox events keep the request id too (workflows.events).

Set up at each process's edge: web (api.serve's uvicorn config, api.app.create_app),
worker and beat (Celery's ``setup_logging`` signal). The ``cv`` tool keeps plain text.

The web's access line for ``/graphql`` names the operation the request ran (its kind and
root fields, noted by the GraphQL layer where it already parsed the document:
:func:`note_operation`), never its variables or arguments: a GET's query string, which
carries them, is left out. Workers and beat log Celery's routine lines about the
housekeeping tasks (received, succeeded, sent by beat) at DEBUG (:class:`QuietTasks`):
those tasks log a line of their own when they did something.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from typing import IO, Any

__all__ = [
    "FIELDS",
    "GRAPHQL_PATH",
    "ContextFilter",
    "NameOperation",
    "QuietTasks",
    "RedactSecrets",
    "begin",
    "bind",
    "configure",
    "current",
    "dict_config",
    "end",
    "make_handler",
    "new_request_id",
    "note_operation",
    "note_vehicle",
    "redact",
    "well_formed",
]

# The fields every line carries when they are known, in this order.
FIELDS = ("request_id", "vehicle_id", "client_id")

# Per unit of work (a request, a task): a dict that whoever learns an id adds to, so
# that the asyncio tasks and threads the work spreads over (each with a copy of the
# context) share what any of them learns.
_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("cv_log_context", default=None)

# An incoming X-Request-ID is kept only when it is short and plain: anything else is
# replaced (and never logged), so a header cannot forge or flood a log line.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_SECRET_PARAMS = re.compile(r"(?P<key>(?:^|[?&])(?:code|state|token|access_token)=)[^&\s\"]*")

# The web's GraphQL endpoint (api.app): its access line names the operation.
GRAPHQL_PATH = "/graphql"
# The context's key for it: not one of FIELDS, so on the access line only.
_OPERATION = "graphql_operation"


# -- the context --------------------------------------------------------------------------


def new_request_id() -> str:
    return uuid.uuid4().hex


def well_formed(value: str | None) -> bool:
    return value is not None and _WELL_FORMED.fullmatch(value) is not None


def begin(**fields: str | None) -> Token[dict[str, str] | None]:
    """Open the context of a unit of work (a request, a task); :func:`end` closes it."""
    return _CONTEXT.set({k: v for k, v in fields.items() if v})


def end(token: Token[dict[str, str] | None] | None = None) -> None:
    if token is None:
        _CONTEXT.set(None)
    else:
        _CONTEXT.reset(token)


def bind(**fields: str | None) -> None:
    """Add what this unit of work has learnt (a caller's client id, its vehicle)."""
    context = _CONTEXT.get()
    if context is None:
        _CONTEXT.set({k: v for k, v in fields.items() if v})
    else:
        context.update({k: v for k, v in fields.items() if v})


def current(field: str) -> str | None:
    context = _CONTEXT.get()
    return None if context is None else context.get(field)


def note_vehicle(vehicle_id: str, client_id: str) -> None:
    """A vehicle was loaded: it is the work's vehicle unless the work is about another
    (then nothing changes: a line is never labelled with a vehicle it is not about)."""
    context = _CONTEXT.get()
    if context is not None and context.get("vehicle_id") in (None, vehicle_id):
        context["vehicle_id"] = vehicle_id
        context["client_id"] = client_id


def note_operation(text: str | None) -> None:
    """The GraphQL operation the request ran, for its access line (``mutation
    createConnectedVehicle``), from the document the GraphQL layer parsed: the caller
    vouches that it holds no argument, variable or made-up name. A second one in the
    same request (a batch) leaves the line without any. Outside a request: nothing."""
    context = _CONTEXT.get()
    if context is not None:
        context[_OPERATION] = "" if _OPERATION in context else (text or "")


# -- records ------------------------------------------------------------------------------


def redact(text: str) -> str:
    return _SECRET_PARAMS.sub(r"\g<key>[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites uvicorn's access-log arguments (client, method, path, version, status):
    the OAuth callback's query carries a code and a state."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class NameOperation(logging.Filter):
    """Rewrites uvicorn's access line (client, method, path, version, status) for
    ``/graphql``: the operation noted by :func:`note_operation` goes after the status,
    and a query string (a GET's document and variables) is left out. Runs as the line is
    logged, in the request's context, after the GraphQL layer noted it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str)):
            return True
        path, mark, _ = args[2].partition("?")
        if path != GRAPHQL_PATH:
            return True
        if mark:
            args = (*args[:2], f"{path}?[omitted]", *args[3:])
        operation = current(_OPERATION)
        if operation:
            record.msg = f"{record.msg} %s"
            args = (*args, operation)
        record.args = args
        return True


class QuietTasks(logging.Filter):
    """Celery's routine INFO lines about `tasks` (the housekeeping, every few seconds)
    go at DEBUG, shown only where DEBUG is: the worker's "Task … received" and "Task …
    succeeded in" and beat's "Sending due task". A failure, a retry or an error of the
    same tasks keeps its level. Installed on the loggers that write those lines."""

    LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")
    _BEAT_SENDING = "Scheduler: Sending due task %s (%s)"

    def __init__(self, tasks: Iterable[str]) -> None:
        super().__init__()
        # (Celery's own format strings: matched exactly, so no other line is touched.)
        from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

        self.tasks = frozenset(tasks)
        self._task_lines = (LOG_RECEIVED, LOG_SUCCESS)

    def _task(self, record: logging.LogRecord) -> object:
        args = record.args
        if isinstance(args, Mapping) and record.msg in self._task_lines:
            return args.get("name")  # (the worker's lines: a dict of the task's fields)
        if record.msg == self._BEAT_SENDING and isinstance(args, tuple) and len(args) == 2:
            return args[1]  # (beat's: the schedule entry's name, the task's)
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or self._task(record) not in self.tasks:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # logged because INFO was on: written only if DEBUG is on too
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _quiet(tasks: Iterable[str]) -> None:
    """Installs :class:`QuietTasks` for `tasks` (if any), in place of one installed
    before."""
    names = frozenset(tasks)
    if not names:
        return
    for name in QuietTasks.LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, QuietTasks)]:
            logger.removeFilter(old)
        logger.addFilter(QuietTasks(names))


class ContextFilter(logging.Filter):
    """Puts the unit of work's ids on the record (None where unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get() or {}
        for field in FIELDS:
            if getattr(record, field, None) is None:
                setattr(record, field, context.get(field))
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        ids = " ".join(f"{f}={v}" for f in FIELDS if (v := getattr(record, f, None)))
        return f"{line} [{ids}]" if ids else line


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    class RedactingJsonFormatter(JsonFormatter):
        def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
            for key in ("message", "exc_info", "stack_info"):
                if isinstance(log_data.get(key), str):
                    log_data[key] = redact(log_data[key])
            for field in FIELDS:  # the ids that are known, none that is not
                if log_data.get(field) is None:
                    log_data.pop(field, None)
            return log_data

    return RedactingJsonFormatter(
        "{levelname}{name}{message}{request_id}{vehicle_id}{client_id}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours: found again and replaced by the next :func:`configure`."""


def make_handler(fmt: str = "json", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing `fmt` ("json" or "text") lines to `stream` (stderr)."""
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(TextFormatter() if fmt == "text" else _json_formatter())
    return handler


def _install_redaction() -> None:
    access = logging.getLogger("uvicorn.access")
    for kind in (RedactSecrets, NameOperation):
        if not any(isinstance(f, kind) for f in access.filters):
            access.addFilter(kind())


def configure(
    fmt: str = "json",
    level: str | int = "INFO",
    *,
    force: bool = False,
    quiet_tasks: Iterable[str] = (),
) -> None:
    """The root logger writes `fmt` lines at `level`; uvicorn's and Celery's loggers go
    through it. Like ``logging.basicConfig``, a process whose root logger already has
    handlers (configured by someone else: a test runner) is left as it is unless `force`;
    the access line's filters are installed whatever, and Celery's routine lines about
    `quiet_tasks` go at DEBUG (:class:`QuietTasks`)."""
    _install_redaction()
    _quiet(quiet_tasks)
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if root.handlers and not ours and not force:
        return
    for handler in ours:
        root.removeHandler(handler)
    root.addHandler(make_handler(fmt))
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []  # uvicorn's own formatters: through the root's instead
        logger.propagate = True


def dict_config(fmt: str = "json", level: str | int = "INFO") -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers and the root through one handler of ours."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}, "operation": {"()": NameOperation}},
        "handlers": {"cv": {"()": make_handler, "fmt": fmt}},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {
                "level": level,
                "handlers": [],
                "propagate": True,
                "filters": ["redact", "operation"],
            },
        },
        "root": {"level": level, "handlers": ["cv"]},
    }
