"""Worker and beat start-up (workers.startup): a worker on Redis sizes its broker pool to
its own pool of tasks; a channel used after its connection was closed raises a connection
error (not the AttributeError that killed workers in issue 17); kombu's reconnect loop
sleeps as a greenlet under gevent; and a database not reachable yet is no reason to
refuse to start. (Refusing without the key: tests/store/test_keys.py; with a RabbitMQ
broker and no Redis for events: tests/faults/test_faults.py.)"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery

from harness.procs import BIN, command
from workers.startup import _size_broker_pool


def sized(broker_url: str, concurrency: int | None, **options: Any) -> dict[str, Any]:
    """The broker transport options a worker of that concurrency starts with."""
    app = Celery("cv-startup-probe", broker=broker_url)
    if options:
        app.conf.broker_transport_options = options
    _size_broker_pool(sender=SimpleNamespace(app=app, concurrency=concurrency))
    return dict(app.conf.broker_transport_options or {})


def test_a_worker_on_redis_has_a_broker_connection_for_each_task_and_its_consumer() -> None:
    options = sized("redis://127.0.0.1:6379/5", 200, visibility_timeout=60)

    assert options == {"visibility_timeout": 60, "max_connections": 232}


def test_a_larger_pool_set_by_hand_is_kept() -> None:
    assert sized("redis://127.0.0.1:6379/5", 4, max_connections=500)["max_connections"] == 500


def test_a_worker_of_no_stated_concurrency_counts_one_task() -> None:
    assert sized("redis://127.0.0.1:6379/5", None)["max_connections"] == 33


def test_a_worker_on_rabbitmq_keeps_its_transport_options() -> None:
    assert sized("amqp://guest:guest@127.0.0.1:5672//", 200, confirm_publish=True) == {
        "confirm_publish": True
    }


@pytest.mark.faults
def test_a_channel_used_after_its_transport_closed_raises_a_connection_error(
    broker: str,
) -> None:
    """The guard itself, as the crash met it: a Redis channel whose transport was
    detached (`Transport.client = None`, as kombu's Connection.collect leaves it) asked
    for connection parameters. Without the guard: AttributeError, "Unrecoverable"."""
    from types import SimpleNamespace

    from kombu.connection import Connection
    from redis.exceptions import ConnectionError as RedisConnectionError

    from workers.startup import _guard_closed_redis_channel

    conf = SimpleNamespace(broker_url=broker)
    _guard_closed_redis_channel(SimpleNamespace(app=SimpleNamespace(conf=conf)))
    with Connection(broker) as conn:  # type: ignore[no-untyped-call]
        channel = conn.default_channel
        transport = channel.connection
        client, transport.client = transport.client, None
        try:
            with pytest.raises(RedisConnectionError, match="connection was closed"):
                channel._connparams()
        finally:
            transport.client = client


def run_python(code: str, **env: str) -> Any:
    """`code` run by the project's Python in a process of its own, in this run's
    environment changed by `env`."""
    return command([str(BIN / "python"), "-c", code], env={**os.environ, **env})


def test_under_gevent_kombus_reconnect_loop_sleeps_as_a_greenlet() -> None:
    """kombu binds `time.sleep` when Celery is first imported, before the worker's gevent
    patches `time`: once workers.startup is imported (by the worker, after the patch) the
    reconnect loop's sleep is gevent's, not the one that blocks the whole hub."""
    done = run_python(
        "import time\n"
        "import kombu.utils.functional as functional\n"
        "blocking = functional.sleep\n"
        "from gevent import monkey\n"
        "monkey.patch_all()\n"
        "assert functional.sleep is blocking  # what the patch alone leaves\n"
        "import workers.startup\n"
        "print(functional.sleep is time.sleep, time.sleep is not blocking)\n"
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_without_gevent_the_reconnect_sleep_is_left_alone() -> None:
    done = run_python(
        "import time\n"
        "import kombu.utils.functional as functional\n"
        "import workers.startup\n"
        "print(functional.sleep is time.sleep)\n"
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_a_database_not_reachable_yet_is_no_reason_to_refuse_to_start() -> None:
    """The key is checked later (readiness reports it): a worker started before its
    database waits for it instead of exiting."""
    done = run_python(
        "from workers.startup import require_key\nrequire_key()\nprint('started')\n",
        CV_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["started"]
    assert "the database is not reachable yet: the secret key is checked later" in done.stderr
