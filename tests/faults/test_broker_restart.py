"""Workers survive the broker (SPEC §6): Redis killed mid-load and started again, empty,
seconds later, while the Procfile's `worker` and `ops` (gevent) consume; and the second
line of defence, for a worker that exits anyway: its supervisor starts it again (an
orchestrator asks whether it lives: tests/workers/test_alive.py).

Issue 17: in 2 runs of 2, such a restart killed a gevent worker for good (kombu's Redis
channel, closed after the connection error, read a transport already closed:
AttributeError "'NoneType' object has no attribute 'hostname'", Unrecoverable error; the
guard: tests/workers/test_startup.py).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness import Cluster, cluster, redis_server, run_until
from harness.procs import Process
from providers.fakes.serve import FakeServer
from settings import Settings
from store.db import Database
from tests.helpers.faults import LATENCY, WORKER_PROCESSES, assert_kept

pytestmark = pytest.mark.faults


def procfile_workers(c: Cluster) -> list[Process]:
    """The Procfile's `worker` (the steps' queue) and `ops`, on gevent, as in production,
    their pools the lines' own (200 and 50 greenlets: issue 17's probe)."""
    steps = c.service.start_worker(queues=None)
    return [steps, c.service.start_ops()]


def assert_survived(workers: list[Process]) -> None:
    """Every worker alive, never restarted, and no "Unrecoverable error" in its log."""
    logs = [w.output(tail=10**7) for w in workers]
    died = [line for log in logs for line in log.splitlines() if "Unrecoverable error" in line]
    assert not died, died[0][:300] + " … " + died[0][-5000:]  # its traceback's end
    alive, restarts = [w.alive() for w in workers], [w.restarts() for w in workers]
    assert alive == [True] * len(workers) and restarts == [0] * len(workers), (alive, restarts)


def test_redis_killed_and_started_again_while_both_workers_consume(
    clean: Database, settings: Settings, smartcar: FakeServer
) -> None:
    with redis_server() as broker, cluster(clean, settings, smartcar, broker.url, workers=0) as c:
        workers = procfile_workers(c)
        c.smartcar.fake.latency = LATENCY
        c.put_in_flight(200)
        run_until(lambda: c.count("authorized") >= 20, 60, "the first authorized")
        for _ in range(2):  # the probe's run, twice over
            broker.kill()  # kill -9: queued and unacked messages gone
            time.sleep(3)
            broker.start()  # empty, on the same port
            time.sleep(2)
        fault_at = time.monotonic()
        c.wait_until_terminal(120)
        report = c.report("redis killed, back 3 s later", time.monotonic() - fault_at)
        assert_survived(workers)
    # The tasks in flight were cancelled when the connection dropped; an exchange among
    # them still ran to its end and committed its tokens (no code lost, none sent twice).
    assert_kept(report)


@pytest.mark.extra  # (the same fault on Redis, above; this one restarts the machine's RabbitMQ)
def test_rabbitmq_restarted_while_both_workers_consume(
    clean: Database, settings: Settings, smartcar: FakeServer, rabbitmq_vhost: str
) -> None:
    """RabbitMQ stopped (its application, the queues kept: quorum queues) and started
    again 3 s later under the Procfile's two workers: both reconnect and go on, and the
    work sent after it is done too."""
    from tests.helpers.rabbitmq import rabbitmqctl

    with cluster(clean, settings, smartcar, rabbitmq_vhost, workers=0) as c:
        workers = procfile_workers(c)
        c.smartcar.fake.latency = LATENCY
        c.put_in_flight(150)
        run_until(lambda: c.count("authorized") >= 20, 60, "the first authorized")
        rabbitmqctl("stop_app")
        try:
            time.sleep(3)
        finally:
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
        fault_at = time.monotonic()
        c.put_in_flight(50)  # work sent after the restart: taken by the reconnected workers
        c.wait_until_terminal(120)
        report = c.report("rabbitmq restarted", time.monotonic() - fault_at)
        assert_survived(workers)
    assert_kept(report)


@pytest.mark.extra  # (the supervisor's own runs: tests/workers/test_supervise.py)
def test_a_worker_that_exits_is_started_again(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    """The worker process itself killed (its supervisor spared): the supervisor says so
    and starts it again, and the work goes on to the end, nothing lost."""
    with cluster(clean, settings, smartcar, broker, workers=1) as c:
        (worker,) = c.service.workers
        c.smartcar.fake.latency = LATENCY
        c.put_in_flight(60)
        run_until(lambda: c.count("authorized") >= 5, 60, "the first authorized")
        (first,) = worker.children()
        os.kill(first, signal.SIGKILL)

        run_until(lambda: worker.restarts() >= 1, 30, "the supervisor noticing")
        run_until(lambda: worker.children() not in ([], [first]), 30, "a new worker")
        c.wait_until_terminal(90)
        report = c.report("worker process killed, restarted", 0)
        said = worker.output(tail=10**7)

    assert "supervise: celery was killed by SIGKILL; starting it again" in said
    assert_kept(report, interrupted_with_a_worker=WORKER_PROCESSES)
