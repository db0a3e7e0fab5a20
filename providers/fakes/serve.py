"""Serve an ASGI app over real HTTP on loopback from a background thread; a fake provider
served so, with the calls that set it up (its accounts, its injected faults)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from providers.fakes.common import Account, FakeProvider, Fault

__all__ = ["FakeServer", "serve_fake", "serve_in_thread"]


@contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Yield the base URL of `app` served on a free port; stop it on exit."""
    sock = socket.socket()
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@dataclass
class FakeServer:
    """A fake provider served at `url`, and the fake itself (its counters, its latency)."""

    url: str
    fake: Any  # a FakeProvider subclass; Any, so that callers reach its own counters

    def account(
        self, name: str, *vehicles: dict[str, Any], withheld: list[str] | None = None
    ) -> None:
        self.fake.accounts[name] = Account(name, list(vehicles), list(withheld or []))

    def fault(self, path: str, status: int, times: int = 1, **kw: Any) -> None:
        self.fake.faults.append(Fault(path=path, status=status, times=times, **kw))


@contextmanager
def serve_fake(fake: FakeProvider) -> Iterator[FakeServer]:
    """`fake` over HTTP on a free loopback port, for as long as the block runs."""
    with serve_in_thread(fake.app()) as url:
        yield FakeServer(url, fake)
