"""One pooled HTTP transport per provider origin per process.

Building an ``httpx.Client`` loads the CA bundle into a new SSL context and opens a new
connection pool (~20 ms of CPU, even over plain http); a validation step used to build
five. Here each origin (scheme, host, port) gets one ``httpx.HTTPTransport`` for the life
of the process, shared by every adapter, every call and every greenlet or thread; clients
built over it (Authlib's ``OAuth2Client`` is one) cost well under a millisecond and must
not close it. Keyed by process id too: a pool is never inherited across a fork.

Every call still carries its own timeout (the adapter's), set per request.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import httpx

__all__ = ["concurrently", "configure", "pooled_transport", "reset"]

T = TypeVar("T")

_lock = threading.Lock()
_transports: dict[tuple[int, str], httpx.BaseTransport] = {}
_max_connections = 200


def configure(*, max_connections: int) -> None:
    """How many connections each origin's pool keeps (before the first transport)."""
    global _max_connections
    _max_connections = max_connections


def _origin(url: str) -> str:
    u = httpx.URL(url)
    return f"{u.scheme}://{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"


def pooled_transport(url: str) -> httpx.BaseTransport:
    """This process's transport for the origin of `url`, made on first use."""
    key = (os.getpid(), _origin(url))
    transport = _transports.get(key)
    if transport is None:
        with _lock:
            transport = _transports.get(key)
            if transport is None:
                limits = httpx.Limits(
                    max_connections=_max_connections,
                    max_keepalive_connections=_max_connections,
                    keepalive_expiry=30.0,
                )
                transport = httpx.HTTPTransport(limits=limits, retries=0)
                _transports[key] = transport
    return transport


def reset() -> None:
    """Close this process's transports (at exit, or between tests)."""
    with _lock:
        pid = os.getpid()
        for key in [k for k in _transports if k[0] == pid]:
            _transports.pop(key).close()


atexit.register(reset)


_executor: tuple[int, ThreadPoolExecutor] | None = None


def _green() -> bool:
    """True in a gevent worker (threading monkey-patched): spawn greenlets, not threads."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("threading"))


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run independent provider calls at once; their results in order. Every call is
    waited for before the first error (if any) is raised, so none is left running."""
    if len(calls) == 1:
        return [calls[0]()]
    if _green():
        import gevent

        greenlets = [gevent.spawn(call) for call in calls]
        gevent.joinall(greenlets)
        for g in greenlets:
            if g.exception is not None:
                raise g.exception
        return [g.value for g in greenlets]
    global _executor
    if _executor is None or _executor[0] != os.getpid():
        _executor = (os.getpid(), ThreadPoolExecutor(max_workers=32, thread_name_prefix="cv-io"))
    futures = [_executor[1].submit(call) for call in calls]
    wait(futures)
    return [f.result() for f in futures]
