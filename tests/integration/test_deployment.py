"""How the Procfile runs the service: which queues carry what and who serves them, unique
worker names, and the host and port the web listens on (from the settings, `$PORT`
honoured). Real processes where it matters: `web` is started as the Procfile says."""

from __future__ import annotations

import shlex
import subprocess

import httpx
import pytest

import celeryconfig
from harness import free_port, path_env, process, wait_for
from harness.procfile import QUEUE_OPTION, QUEUES, expand, get_option, procfile
from settings import Settings
from workers.app import app
from workflows.registry import REGISTRY


def served_queues() -> dict[str, set[str]]:
    """Each worker line of the Procfile → the queues it consumes."""
    out = {}
    for name, command in procfile().items():
        argv = shlex.split(expand(command, {}))
        if "worker" in argv:
            queues = get_option(argv, QUEUE_OPTION)
            assert queues, f"the Procfile's {name} names no queue"
            out[name] = set(queues.split(","))
    return out


def test_every_queue_is_served_and_steps_are_alone_on_theirs() -> None:
    served = served_queues()
    assert set().union(*served.values()) == set(celeryconfig.QUEUES)
    assert served["worker"] == {celeryconfig.STEPS}  # nothing slow in front of a step
    assert QUEUES == celeryconfig.QUEUES  # the harness's workers serve them all


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        *[(spec.name, "cv") for spec in REGISTRY.values()],
        ("cv.redrive", "cv"),
        ("cv.process_provider_webhook", "cv"),
        ("cv.deliver_webhook", "cv.webhooks"),
        ("cv.deliver_webhooks", "cv.housekeeping"),
        ("cv.relay_outbox", "cv.housekeeping"),
        ("cv.sweep", "cv.housekeeping"),
        ("cv.prune", "cv.housekeeping"),
    ],
)
def test_each_task_goes_to_its_queue(task: str, queue: str) -> None:
    options = app.amqp.router.route({}, task)
    assert options["queue"].name == queue


def test_housekeeping_sends_no_task_events_and_steps_do() -> None:
    import workers.tasks  # noqa: F401 - registers the tasks

    housekeeping = {"cv.relay_outbox", "cv.deliver_webhooks", "cv.deliver_webhook"}
    housekeeping |= {"cv.sweep", "cv.prune"}
    for name in housekeeping:
        assert app.tasks[name].send_events is False, name
    for spec in REGISTRY.values():
        assert app.tasks[spec.name].send_events is True, spec.name


def test_worker_names_are_unique_per_process() -> None:
    """Under honcho each line runs in a shell: `$$` is that shell's process id."""
    for name in ("worker", "ops"):
        command = procfile()[name]
        names = {
            subprocess.run(
                ["/bin/sh", "-c", f"echo {command}"], capture_output=True, text=True, check=True
            ).stdout.split(" -n ")[1]
            for _ in range(2)
        }
        assert len(names) == 2, names


def test_the_web_port_comes_from_the_settings_and_port_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CV_WEB_PORT", raising=False)
    monkeypatch.setenv("PORT", "9123")
    assert Settings().web_port == 9123
    monkeypatch.setenv("CV_WEB_PORT", "9124")
    assert Settings().web_port == 9124


def test_web_listens_where_the_settings_say() -> None:
    port = free_port()
    env = {**path_env(), "PORT": str(port), "CV_WEB_HOST": "127.0.0.1"}
    env.pop("CV_WEB_PORT", None)
    argv = shlex.split(expand(procfile()["web"], env))
    with process("web", argv, env):
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
            "the web on $PORT",
            timeout=60,
        )
