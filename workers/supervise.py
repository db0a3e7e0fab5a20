"""Keep one of the Procfile's processes running: ``python -m workers.supervise -- CMD…``.

The service's own processes recover from a broker or a database that goes away and
comes back. This is the second line of defence, for a process that exits anyway (an
error nobody foresaw, an out-of-memory kill): it is started again, after a pause that
doubles up to a limit, and the reason is said on stderr. `make run` and the test and
bench harness start the Procfile's lines under it; in production the platform does the
same (systemd ``Restart=always``, an orchestrator's restart policy): see
docs/production.md, "Keep them running".

- Exit 78 (EX_CONFIG: a missing or wrong setting, e.g. the secret key) is not retried:
  starting again would fail again. The supervisor exits 78 too.
- SIGTERM, SIGINT and SIGHUP are passed on to the process, which then stops for good;
  so does the supervisor, with the process's exit code (128 + the signal's number when
  a signal ended it). The process runs in a session of its own, so a signal to the
  supervisor's process group (as honcho and systemd send it) reaches it once, through
  the supervisor; and it dies with the supervisor, so a `kill -9` of the group still
  takes the whole process with it.
- A process that ran for a while before it exited starts again after the shortest pause.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from types import FrameType

__all__ = ["main"]

EX_CONFIG = 78
_PR_SET_PDEATHSIG = 1


def _say(text: str) -> None:
    print(f"supervise: {text}", file=sys.stderr, flush=True)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _die_with_parent(parent: int) -> None:
    """In the child, before it runs: SIGKILL when the supervisor dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: a supervisor killed leaves it running
        return
    if os.getppid() != parent:  # it died before the request was made
        os._exit(1)


def _exit_code(code: int) -> int:
    """A shell's exit code: 128 + the signal's number for a process a signal ended."""
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.supervise",
        description="Run a command and start it again whenever it exits, until told to stop.",
    )
    parser.add_argument("--min-pause", type=float, default=1.0, help="first pause (s)")
    parser.add_argument("--max-pause", type=float, default=30.0, help="longest pause (s)")
    parser.add_argument(
        "--settled", type=float, default=60.0, help="a run this long resets the pause (s)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)

    supervisor = os.getpid()
    pause = args.min_pause
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(  # noqa: S603 - the operator's own command line
            command,
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, supervisor),
        )
        if stopping and child.poll() is None:  # told to stop while it was being started
            child.terminate()
        code = child.wait()
        if stopping:
            return _exit_code(code)
        if code == EX_CONFIG:
            _say(f"{command[0]} {_describe(code)} (a setting is wrong): not started again")
            return code
        if time.monotonic() - started >= args.settled:
            pause = args.min_pause
        _say(f"{command[0]} {_describe(code)}; starting it again in {pause:.0f}s")
        deadline = time.monotonic() + pause
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        pause = min(pause * 2, args.max_pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
