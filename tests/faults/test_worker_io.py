"""The worker's provider I/O over a real worker process of the Procfile (gevent): a
provider call that hangs times out and is tried again while the worker goes on serving
other vehicles; the process talks to a provider over one pool of connections."""

from __future__ import annotations

import time

import pytest

from harness import cluster
from providers.fakes.serve import FakeServer
from settings import Settings
from store.db import Database

pytestmark = pytest.mark.faults

CONCURRENCY = 8


def test_a_hanging_provider_holds_up_only_its_own_calls(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    # Given three calls that hang far longer than a call may take (1 s): more than one
    # attempt's inline budget, so a step is tried again by the retry policy too
    hang = 60.0
    smartcar.fault("/v2.0/vehicles", 0, times=3, delay=hang)
    with cluster(
        clean,
        settings,
        smartcar,
        broker,
        workers=1,
        concurrency=CONCURRENCY,
        beat=False,
        CV_PROVIDER_TIMEOUT_SECONDS="1",
    ) as c:
        c.put_in_flight(40, enqueue=False)
        before = set(smartcar.fake.connections)  # the users' own, at the consent page

        # When the worker validates them all
        c.enqueue_all()
        c.wait_until_terminal(45)

        # Then every vehicle is authorized while the hung calls still hang at the fake:
        # nothing waited for them
        report = c.report("three calls hang", 0)
        assert report.authorized == 40, report
        assert smartcar.fake.in_flight >= 1
        assert report.double_exchanges == 0
        # and the worker process reached the provider over one pool, its connections
        # kept alive and reused: far fewer than its calls (40 validations make 160+;
        # a client per call opened one connection each)
        made = smartcar.fake.connections - before
        calls = sum(smartcar.fake.requests.values())
        assert calls >= 160
        assert len(made) <= calls // 4, (len(made), calls)


def test_every_message_is_acked_when_many_tasks_end_together(
    clean: Database, settings: Settings, smartcar: FakeServer, broker: str
) -> None:
    # Given a backlog of 400 tasks waiting when a worker of the Procfile's pool size (200
    # greenlets) starts: it takes them at once, they queue for the database's
    # connections and end in bursts, each acking its message from its own greenlet over
    # a connection of the consumer's Redis pool
    import redis

    with cluster(clean, settings, smartcar, broker, workers=0, concurrency=None, beat=False) as c:
        with c.celery.connection_for_write() as conn, conn.Producer() as producer:
            for _ in range(400):
                c.celery.send_task("cv.relay_outbox", producer=producer)
        client = redis.Redis.from_url(broker)
        try:
            # When the worker starts
            c.start_worker()

            # Then every message is taken and acked: one left unacked would come back
            # after the visibility timeout, and run again (kombu's pool of 10 connections
            # lost acks to MaxConnectionsError: "Couldn't ack")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                client.llen("cv.housekeeping") or client.hlen("unacked")
            ):
                time.sleep(0.2)
            time.sleep(1)  # would-be stragglers
            left = client.llen("cv.housekeeping") + client.hlen("unacked")
        finally:
            client.close()
        logs = c.logs()
        assert "Couldn't ack" not in logs, logs[-3000:]
        assert left == 0, logs[-3000:]
