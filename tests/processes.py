"""Real processes of the service for end-to-end tests: started with their own environment,
waited for until they answer, stopped (and their output shown) at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up within {timeout}s")


def answers(url: str, auth: tuple[str, str] | None = None) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1, auth=auth).status_code < 500


@contextmanager
def process(name: str, argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own process group; on exit stop it, and print its output if the
    test failed or it died (pytest shows captured output only for failures)."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.seek(0)
            output = log.read().decode(errors="replace")
            print(f"----- {name} (exit {proc.returncode}) -----\n{output[-4000:]}")


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(BIN / "cv"), *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
