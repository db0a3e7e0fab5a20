"""Child processes of a run: each in its own process group (so that a kill takes its pool
with it), its output in a log file, stopped on exit; and waiting until something answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import httpx

__all__ = [
    "BIN",
    "ROOT",
    "Process",
    "answers",
    "cli",
    "command",
    "free_port",
    "path_env",
    "process",
    "run_until",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def path_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the virtualenv's bin first on PATH, so that a
    Procfile's bare `celery`, `uvicorn`, `python` are the project's."""
    base = dict(os.environ if env is None else env)
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    return base


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Until `check()` is true; connection errors count as not yet. AssertionError after
    `timeout` seconds (a test fails on it; the bench records it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def run_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    wait_for(check, what, timeout)


def answers(url: str, auth: tuple[str, str] | None = None) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1, auth=auth).status_code < 500


class Process:
    """One command in its own session; output appended to `log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log
        self._log: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """kill -9 the whole group (a worker and its pool processes): the machine died."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def terminate(self) -> None:
        """SIGTERM the group: a warm shutdown begins."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the group, SIGKILL if it takes longer than `timeout`."""
        self.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()

    def restarts(self) -> int:
        """How many times its supervisor started the process again (workers.supervise)."""
        return self.output(tail=10**7).count("supervise: ")

    def children(self) -> list[int]:
        """The pids of its direct children (the supervised process, under a supervisor)."""
        try:
            found = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in found.split()]

    def output(self, tail: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]


@contextmanager
def process(
    name: str, argv: list[str], env: dict[str, str], *, show: bool = True
) -> Iterator[Process]:
    """Run `argv` for the block; on exit stop it and (with `show`) print the tail of its
    output (pytest shows captured output only for failures)."""
    with tempfile.TemporaryDirectory(prefix=f"cv-{name}-") as tmp:
        proc = Process(name, argv, env, Path(tmp) / f"{name}.log")
        try:
            yield proc
        finally:
            proc.stop()
            if show:
                print(f"----- {name} (exit {proc.returncode}) -----\n{proc.output()}")


def command(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`argv` run to its end in the project's root, its output captured as text."""
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    """The operators' tool `cv`; its standard output (AssertionError when it fails)."""
    result = command([str(BIN / "cv"), *args], env=env, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Browsers:
    """One HTTP client per thread, as one browser per user: its connections kept, no
    redirect followed (the journeys check each hop). All closed on leaving the block."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[httpx.Client] = []
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(follow_redirects=False, timeout=self._timeout)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def __enter__(self) -> Browsers:
        return self

    def __exit__(self, *_: object) -> None:
        for client in self._all:
            client.close()
