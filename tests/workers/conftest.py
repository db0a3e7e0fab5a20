"""The workers room's fixtures: Celery's event stream as operators watch it (Flower,
`celery events`)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def stream() -> Iterator[list[dict[str, Any]]]:
    """Every Celery event on the broker while the test runs."""
    from workers.app import app

    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    receivers: list[Any] = []

    def listen() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": seen.append})
            receivers.append(receiver)
            consumer = receiver.consume(limit=None, timeout=None, wakeup=False)
            ready.set()
            for _ in consumer:
                if receiver.should_stop:
                    break

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    # The receiver subscribes on the consumer's first step, not when it is made: a probe,
    # sent until it is heard, says the stream listens (what was sent before is not heard).
    probe = uuid.uuid4().hex
    deadline = time.monotonic() + 10
    with app.events.default_dispatcher() as dispatcher:
        while not any(e.get("probe") == probe for e in seen):
            assert time.monotonic() < deadline, "the event stream does not listen"
            dispatcher.send("cv-test-probe", probe=probe)
            time.sleep(0.1)
    yield seen
    if receivers:
        receivers[0].should_stop = True
    thread.join(5)
