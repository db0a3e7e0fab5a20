"""The Procfile's commands, as `make run` (honcho) would run them: `${VAR:-default}` and
`$VAR` expanded from the environment, then split like a shell. Tests and the bench start
the service from these lines, so that they run the worker setup the Procfile declares;
an override (the bench's prefork-2 baseline, a fault test's small pool) replaces one
option and keeps the rest."""

from __future__ import annotations

import os
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.procs import ROOT
from workflows.registry import Queue

__all__ = [
    "expand",
    "get_option",
    "procfile",
    "procfile_argv",
    "set_option",
    "task_processes",
    "web_argv",
    "worker_argv",
]

PROCFILE = ROOT / "Procfile"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")

POOL = ("-P", "--pool")
CONCURRENCY = ("-c", "--concurrency")
HOSTNAME = ("-n", "--hostname")
QUEUE_OPTION = ("-Q", "--queues")
# Every queue the tasks are routed to (the task registry's).
QUEUES = tuple(q.value for q in Queue)


def procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process type → command line."""
    lines: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, _, command = line.partition(":")
        lines[name.strip()] = command.strip()
    return lines


def expand(command: str, env: Mapping[str, str]) -> str:
    """`${VAR:-default}`, `${VAR-default}`, `${VAR}` and `$VAR`, as a POSIX shell would
    (`:-` also takes the default for an empty value); `$$` (the shell's process id, which
    makes node names unique) becomes a token of this expansion's own."""
    command = command.replace("$$", uuid.uuid4().hex[:8])

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        default = m.group(2)
        got = env.get(name)
        if default is not None and not got and (got is None or ":-" in m.group(0)):
            return default
        return got or ""

    return _VAR.sub(value, command)


def procfile_argv(name: str, env: Mapping[str, str], path: Path = PROCFILE) -> list[str]:
    lines = procfile(path)
    if name not in lines:
        raise KeyError(f"no {name!r} line in {path}")
    return shlex.split(expand(lines[name], env))


def get_option(argv: list[str], names: tuple[str, ...]) -> str | None:
    """The value of an option given as `-X v`, `-Xv`, `--long v` or `--long=v`."""
    for i, arg in enumerate(argv):
        for opt in names:
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if opt.startswith("--") and arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
            if not opt.startswith("--") and arg.startswith(opt) and len(arg) > len(opt):
                return arg[len(opt) :]
    return None


def set_option(argv: list[str], names: tuple[str, ...], value: str) -> list[str]:
    """`argv` with every spelling of the option removed and `--long=value` appended."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in names and i + 1 < len(argv):
            skip = True
            continue
        if any(
            (o.startswith("--") and arg.startswith(o + "="))
            or (not o.startswith("--") and arg.startswith(o) and len(arg) > len(o))
            for o in names
        ):
            continue
        out.append(arg)
    return [*out, f"{names[-1]}={value}"]


def worker_argv(
    env: Mapping[str, str],
    *,
    pool: str | None = None,
    concurrency: int | None = None,
    name: str | None = None,
    queues: Sequence[str] | None = QUEUES,
) -> list[str]:
    """The Procfile's `worker`, with the pool, its size and the node name overridden where
    given (a node name must be unique among the workers of one broker). It serves every
    queue unless `queues` says otherwise: one such worker is a whole service (the
    Procfile splits them between `worker` and `ops`)."""
    argv = procfile_argv("worker", env)
    if queues is not None:
        argv = set_option(argv, QUEUE_OPTION, ",".join(queues))
    if pool is not None:
        argv = set_option(argv, POOL, pool)
    if concurrency is not None:
        argv = set_option(argv, CONCURRENCY, str(concurrency))
    if name is not None:
        argv = set_option(argv, HOSTNAME, name)
    return argv


def task_processes(argv: list[str]) -> int:
    """How many OS processes of a worker run tasks: prefork's pool size, else one (gevent,
    eventlet and threads run every task in the worker's own process)."""
    pool = get_option(argv, POOL) or "prefork"
    if pool != "prefork":
        return 1
    concurrency = get_option(argv, CONCURRENCY)
    return int(concurrency) if concurrency else os.cpu_count() or 1  # Celery's default


def web_argv(env: Mapping[str, str], *, port: int, processes: int | None = None) -> list[str]:
    """The Procfile's `web` on `port`; with `processes`, that many uvicorn processes
    whatever the line says."""
    argv = procfile_argv("web", {**env, "CV_WEB_PORT": str(port)})
    argv = set_option(argv, ("--port",), str(port))
    if processes is not None:
        argv = set_option(argv, ("--workers",), str(processes))
    return argv
