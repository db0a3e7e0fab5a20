"""A worker's liveness, for an orchestrator's probe (Kubernetes' `exec` probe, a
systemd timer, a script): ``python -m workers.alive``.

With ``CV_ALIVE_FILE`` set, the worker touches that file every ``CV_HEARTBEAT_SECONDS``
from a thread of its own (a greenlet under gevent, so the file goes stale when the
process's loop is blocked: a CPU-bound or blocking call holding the hub). Not from the
worker's timer (the pattern of celery/celery#4079): the consumer clears that timer when
the broker connection drops, and a worker waiting for the broker to come back is alive
(starting it again would not help). The file is removed at a clean stop; a worker that
exits is gone anyway, and its supervisor or the orchestrator starts it again.

The probe exits 0 when the file is younger than ``--max-age`` (three heartbeats, 10 s at
least), else 1, saying why.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any

from celery import bootsteps

from settings import get_settings

__all__ = ["Alive", "main"]


class Alive(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touches CV_ALIVE_FILE every heartbeat, from the worker's main process."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self.path = Path(settings.alive_file) if settings.alive_file else None
        self.every = settings.heartbeat_seconds
        self.stopping = threading.Event()

    def start(self, worker: Any) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.touch()
        ticker = threading.Thread(target=self._tick, name="cv-alive", daemon=True)
        ticker.start()

    def _tick(self) -> None:
        while not self.stopping.wait(self.every):
            self.touch()

    def touch(self) -> None:
        assert self.path is not None
        with contextlib.suppress(OSError):  # a full disk must not stop the worker
            self.path.touch()

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m workers.alive",
        description="Exit 0 when the worker that writes the file is alive, else 1.",
    )
    parser.add_argument(
        "--file",
        default=settings.alive_file,
        help="the file the worker touches (default: CV_ALIVE_FILE)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=max(10.0, 3 * settings.heartbeat_seconds),
        help="seconds the file may go untouched (default: three heartbeats, 10 s at least)",
    )
    args = parser.parse_args(argv)
    if not args.file:
        parser.error("no file to read: give --file or set CV_ALIVE_FILE")
    try:
        age = time.time() - Path(args.file).stat().st_mtime
    except FileNotFoundError:
        print(f"not alive: {args.file} does not exist (not started, or stopped)")
        return 1
    if age > args.max_age:
        print(f"not alive: {args.file} untouched for {age:.0f}s (more than {args.max_age:.0f}s)")
        return 1
    print(f"alive: {args.file} touched {age:.1f}s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
