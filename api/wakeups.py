"""Waking a mutation's bounded wait when its vehicle changes, without polling.

After every commit that changes a connected vehicle, the worker and the API publish the
vehicle's id on ``workflows.events.CHANGED``. One listener per web process (one Redis
connection, subscribed once) wakes every waiter registered for that id. A wake only says
"read again": the database stays the truth, so a lost or spurious wake costs at most one
read. After a reconnection every waiter is woken (a change may have been published while
the listener was away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import redis.asyncio

from workflows.events import CHANGED

__all__ = ["Wakeups"]

log = logging.getLogger(__name__)

_RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)


class Wakeups:
    """The process's listener on CHANGED, started on first use, closed by the app's
    lifespan. Bound to the event loop it started on; restarted on another."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.subscribed = asyncio.Event()  # set while the listener is subscribed
        # Names the connection (CLIENT LIST) so that an operator, or a test, can find it.
        self.client_name = f"cv-wakeups-{os.getpid()}-{id(self):x}"
        self.subscriptions = 0  # how many times the listener (re)subscribed

    @property
    def waiting(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    @contextlib.asynccontextmanager
    async def watch(self, vehicle_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever `vehicle_id` may have changed. Enter it before the first
        read: a change between that read and the wait still wakes."""
        self._start()
        event = asyncio.Event()
        self._waiters.setdefault(vehicle_id, set()).add(event)
        try:
            # No need to wait for the listener's subscription: each (re)subscription
            # wakes every waiter, which then reads again.
            yield event
        finally:
            events = self._waiters.get(vehicle_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[vehicle_id]

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        if self._loop is not loop:  # first use, or a new loop: the old one's listener is dead
            self._waiters.clear()
            self.subscribed = asyncio.Event()
        self._loop = loop
        self._task = loop.create_task(self._listen(), name="cv-wakeups")

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def _listen(self) -> None:
        failures = 0
        while True:
            client = redis.asyncio.Redis.from_url(
                self._url, client_name=self.client_name, health_check_interval=30
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANGED)
                self.subscriptions += 1
                self.subscribed.set()
                failures = 0
                self._wake_all()  # whatever was published while away: read again
                while True:
                    # A timeout, not a blocking read: each call may PING (health check),
                    # so a connection that died silently is noticed.
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    vehicle_id = data.decode() if isinstance(data, bytes) else str(data)
                    for event in self._waiters.get(vehicle_id, ()):
                        event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The URL may hold a password: the error's type only.
                log.warning("wakeups: events Redis lost (%s); reconnecting", type(exc).__name__)
                self.subscribed.clear()
                self._wake_all()
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):
                    await client.aclose()  # type: ignore[attr-defined]
