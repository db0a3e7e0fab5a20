"""`python -m workers.alive`, an orchestrator's liveness probe, and the worker step that
touches its file (CV_ALIVE_FILE): alive while the file is fresh, not alive once it is
stale or gone, and saying why; the file touched every heartbeat from a thread of the
worker's own and removed at a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import cluster, redis_server, run_until
from harness.procs import BIN, command
from providers.fakes.serve import FakeServer
from settings import Settings, get_settings
from store.db import Database
from tests.helpers.wait import wait_until
from workers.alive import Alive


def alive(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return command([str(BIN / "python"), "-m", "workers.alive", *args], env=env)


@pytest.mark.faults
def test_the_liveness_probe(
    clean: Database, settings: Settings, smartcar: FakeServer, tmp_path: os.PathLike[str]
) -> None:
    """`python -m workers.alive`: alive while the worker runs, the broker away included
    (a worker waiting for it is not to be restarted); not alive when the process hangs
    (stopped here with SIGSTOP), nor once it stopped."""
    alive_file = os.path.join(tmp_path, "worker.alive")
    with (
        redis_server() as broker,
        cluster(
            clean,
            settings,
            smartcar,
            broker.url,
            workers=1,
            beat=False,
            CV_ALIVE_FILE=alive_file,
            CV_HEARTBEAT_SECONDS="0.5",
            CV_WORKER_DEAD_SECONDS="5",
        ) as c,
    ):
        env = c.env
        (worker,) = c.service.workers
        run_until(lambda: os.path.exists(alive_file), 60, "the worker's first touch")
        assert alive(env).returncode == 0

        broker.kill()
        time.sleep(4)  # longer than the probe's window (--max-age 2, below)
        away = alive(env, "--max-age", "2")
        broker.start()

        (celery,) = worker.children()
        os.kill(celery, signal.SIGSTOP)
        try:
            time.sleep(4)
            hung = alive(env, "--max-age", "2")
        finally:
            os.kill(celery, signal.SIGCONT)
        run_until(lambda: alive(env, "--max-age", "2").returncode == 0, 30, "alive again")

        c.service.stop_workers()  # a clean stop removes the file
        stopped = alive(env)

    assert away.returncode == 0, away.stdout
    assert hung.returncode == 1 and "untouched for" in hung.stdout, hung.stdout
    assert stopped.returncode == 1 and "does not exist" in stopped.stdout, stopped.stdout


# -- the probe on its own -------------------------------------------------------------------


def probe_env(**values: str) -> dict[str, str]:
    """This run's environment, without a liveness file unless `values` name one."""
    env = {k: v for k, v in os.environ.items() if k != "CV_ALIVE_FILE"}
    return {**env, **values}


def aged(path: Path, seconds: float) -> Path:
    """`path`, last touched `seconds` ago."""
    path.touch()
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_fresh_file_is_alive(tmp_path: Path) -> None:
    path = aged(tmp_path / "worker.alive", 1)

    done = alive(probe_env(), "--file", str(path), "--max-age", "10")

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"alive: {path} touched "), done.stdout


def test_a_stale_file_is_not_alive_and_says_for_how_long(tmp_path: Path) -> None:
    path = aged(tmp_path / "worker.alive", 300)

    done = alive(probe_env(), "--file", str(path), "--max-age", "10")

    assert done.returncode == 1
    said = done.stdout
    assert said.startswith(f"not alive: {path} untouched for 30") and "(more than 10s)" in said, (
        said
    )


def test_a_missing_file_is_not_alive(tmp_path: Path) -> None:
    path = tmp_path / "worker.alive"

    done = alive(probe_env(CV_ALIVE_FILE=str(path)))

    assert done.returncode == 1
    assert f"not alive: {path} does not exist" in done.stdout, done.stdout


# (The probe's own start takes a second or two: ages keep that far from each window.)
@pytest.mark.parametrize(
    ("heartbeat", "age", "code"),
    [("5", 12, 0), ("5", 20, 1), ("1", 5, 0), ("1", 13, 1)],
    ids=[
        "3 beats of 5s, 12s old",
        "3 beats of 5s, 20s old",
        "10s floor, 5s old",
        "10s floor, 13s old",
    ],
)
def test_by_default_the_file_may_miss_three_heartbeats_and_10s_at_least(
    tmp_path: Path, heartbeat: str, age: float, code: int
) -> None:
    path = aged(tmp_path / "worker.alive", age)
    env = probe_env(
        CV_ALIVE_FILE=str(path), CV_HEARTBEAT_SECONDS=heartbeat, CV_WORKER_DEAD_SECONDS="60"
    )

    done = alive(env)

    assert done.returncode == code, done.stdout + done.stderr


def test_without_a_file_to_read_the_probe_says_so(tmp_path: Path) -> None:
    done = alive(probe_env())

    assert done.returncode == 2  # argparse's usage error: a probe set up wrong
    assert "no file to read: give --file or set CV_ALIVE_FILE" in done.stderr, done.stderr


# -- the worker's step ----------------------------------------------------------------------


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Alive]:
    """The worker's step as a worker builds it, with a file in a directory not made yet
    and a heartbeat of 0.1 s (the settings read anew, and again after)."""
    monkeypatch.setenv("CV_ALIVE_FILE", str(tmp_path / "run" / "worker.alive"))
    monkeypatch.setenv("CV_HEARTBEAT_SECONDS", "0.1")
    get_settings.cache_clear()
    try:
        made = Alive(None)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    yield made
    made.stop(None)


def test_the_step_touches_its_file_every_heartbeat(step: Alive) -> None:
    assert step.path is not None
    step.start(None)
    assert step.path.exists()  # at once: a probe right after the start finds it

    os.utime(step.path, (0, 0))  # as if untouched since 1970
    wait_until(lambda: step.path is not None and step.path.stat().st_mtime > 0, timeout=5)

    assert time.time() - step.path.stat().st_mtime < 5


def test_a_clean_stop_removes_the_file_and_touches_it_no_more(step: Alive) -> None:
    assert step.path is not None
    step.start(None)

    step.stop(None)
    time.sleep(0.3)  # three heartbeats

    assert not step.path.exists()
