"""`python -m workers.supervise`: a process that exits is started again, saying why;
exit 78 (a wrong setting) is final; a signal to the supervisor stops the process, once,
and for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness import ROOT, run_until

pytestmark = pytest.mark.faults


@contextmanager
def supervise(log: Path, *command: str) -> Iterator[subprocess.Popen[bytes]]:
    """The supervisor running `command`, its stderr in `log`; killed if still running."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.supervise", "--min-pause", "0.1", "--", *command],
            cwd=ROOT,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_process_that_exits_is_started_again(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # each run notes itself, then exits 3 (the third run stays up)
    script = (
        "import os, sys, time\n"
        f"p = {str(runs)!r}\n"
        "open(p, 'a').write('run\\n')\n"
        "sys.exit(3) if open(p).read().count('run') < 3 else time.sleep(60)\n"
    )
    log = tmp_path / "log"
    with supervise(log, sys.executable, "-c", script) as supervisor:
        run_until(lambda: runs.exists() and runs.read_text().count("run") == 3, 30, "3 runs")
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=30)
    said = log.read_text()

    assert said.count("exited with code 3; starting it again") == 2, said
    assert code == 128 + signal.SIGTERM  # the third run, ended by the signal passed on


def test_a_wrong_setting_is_final(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with supervise(log, sys.executable, "-c", "import sys; sys.exit(78)") as supervisor:
        code = supervisor.wait(timeout=30)
    said = log.read_text()

    assert code == 78
    assert "a setting is wrong): not started again" in said


def test_a_signal_stops_the_process_once_and_for_good(tmp_path: Path) -> None:
    """SIGTERM to the supervisor's process group (as honcho and systemd send it) reaches
    the process once, through the supervisor, and nothing is started again."""
    got = tmp_path / "got"
    script = (
        "import signal, sys, time\n"
        "def on_term(*_):\n"
        f"    open({str(got)!r}, 'a').write('TERM\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "time.sleep(60)\n"
    )
    with supervise(tmp_path / "log", sys.executable, "-c", script) as supervisor:
        time.sleep(1.0)  # started
        os.killpg(supervisor.pid, signal.SIGTERM)
        code = supervisor.wait(timeout=30)
    time.sleep(0.3)

    assert code == 0
    assert got.read_text() == "TERM\n"


def test_the_process_dies_with_its_supervisor(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    with supervise(tmp_path / "log", sys.executable, "-c", script) as supervisor:
        run_until(lambda: pid_file.exists() and bool(pid_file.read_text()), 30, "the process")
        child = int(pid_file.read_text())
        os.killpg(supervisor.pid, signal.SIGKILL)  # the machine died, as the harness's kill
        supervisor.wait(timeout=30)

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"  # dead, not reaped

    run_until(gone, 10, "the process gone with its supervisor")
