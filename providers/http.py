"""One pooled HTTP transport per provider origin per process, and running independent
provider calls at once.

Building an ``httpx.Client`` loads the CA bundle into a new SSL context and opens a new
connection pool (~20 ms of CPU, even over plain http); a validation step used to build
five. Here each origin (scheme, host, port) gets one ``httpx.HTTPTransport`` for the life
of the process, shared by every adapter, every call and every greenlet or thread; clients
built over it (Authlib's ``OAuth2Client`` is one) cost well under a millisecond and must
not close it. Keyed by process id too: a pool is never inherited across a fork. A proxy
set in the environment (``HTTPS_PROXY``, ``NO_PROXY``…) is honoured per origin, as httpx
does for the clients it builds itself.

Every call carries its own timeout (the adapter's), set per request; in a gevent worker
it is also the call's overall deadline (:func:`deadline`), since httpx's timeout bounds
each phase (connect, each read), not a provider that trickles its answer.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import itertools
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import httpx

import metrics
from providers import calls as call_log

__all__ = [
    "MeteredTransport",
    "concurrently",
    "configure",
    "deadline",
    "endpoint_template",
    "pooled_transport",
    "reset",
]

T = TypeVar("T")

_lock = threading.Lock()
_transports: dict[tuple[int, str], httpx.BaseTransport] = {}
_max_connections = 600
# A kept-alive connection idle longer than this is not reused: a server that closed it
# meanwhile would fail the next request (a token exchange must not meet that).
KEEPALIVE_SECONDS = 5.0


def configure(*, max_connections: int) -> None:
    """How many connections each origin's pool keeps (before the first transport)."""
    global _max_connections
    _max_connections = max_connections


def _origin(url: str) -> tuple[str, str]:
    u = httpx.URL(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"{u.scheme}://{u.host}:{port}", u.host


def _proxy_for(scheme: str, host: str) -> str | None:
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(scheme) or proxies.get("all")


class ShardedTransport(httpx.BaseTransport):
    """One origin's pool, in shards of a few connections each, taken in turn.

    httpcore assigns waiting requests to connections by scanning every connection of the
    pool (and polls each idle one's socket) on every request and every response closed:
    with hundreds of connections and requests in flight that scan was most of a gevent
    worker's CPU (profiled: 55 %). Small shards keep each scan short."""

    def __init__(self, shards: list[httpx.HTTPTransport]) -> None:
        self._shards = shards
        self._turn = itertools.count()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._shards[next(self._turn) % len(self._shards)]
        return shard.handle_request(request)

    def close(self) -> None:
        for shard in self._shards:
            shard.close()


SHARD_CONNECTIONS = 16


def pooled_transport(url: str) -> httpx.BaseTransport:
    """This process's transport for the origin of `url`, made on first use."""
    origin, host = _origin(url)
    key = (os.getpid(), origin)
    transport = _transports.get(key)
    if transport is None:
        with _lock:
            transport = _transports.get(key)
            if transport is None:
                per_shard = min(SHARD_CONNECTIONS, _max_connections)
                limits = httpx.Limits(
                    max_connections=per_shard,
                    max_keepalive_connections=per_shard,
                    keepalive_expiry=KEEPALIVE_SECONDS,
                )
                proxy = _proxy_for(origin.split(":", 1)[0], host)
                tls = httpx.create_ssl_context()  # one CA bundle load for all shards
                shards = [
                    httpx.HTTPTransport(verify=tls, limits=limits, retries=0, proxy=proxy)
                    for _ in range(-(-_max_connections // per_shard))
                ]
                transport = ShardedTransport(shards)
                _transports[key] = transport
    return transport


def endpoint_template(path: str, templates: tuple[tuple[str, ...], ...]) -> str:
    """The template of `path` among `templates` (split paths; a ``{…}`` segment matches
    any one segment), or ``other``: a label never carries an id or a path a provider
    (or a fake) made up."""
    parts = path.strip("/").split("/")
    for template in templates:
        if len(template) == len(parts) and all(
            t == p or t.startswith("{") for t, p in zip(template, parts, strict=True)
        ):
            return "/" + "/".join(template)
    return metrics.OTHER


class MeteredTransport(httpx.BaseTransport):
    """Counts each call (provider, endpoint template, status) and its time to the
    answer's headers, around the transport it wraps (shared, never closed here).
    `prefix`: the path a configured base URL puts before the provider's own paths."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        provider: str,
        templates: tuple[tuple[str, ...], ...],
        prefix: str = "",
    ) -> None:
        self._inner = inner
        self._provider = provider
        self._templates = templates
        self._prefix = prefix.rstrip("/")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self._prefix and path.startswith(self._prefix):
            path = path[len(self._prefix) :]
        endpoint = endpoint_template(path, self._templates)
        started = time.perf_counter()
        status: int | None = None
        timeout = False
        try:
            response = self._inner.handle_request(request)
            status = response.status_code
            return response
        except BaseException as exc:  # a gevent.Timeout too (our deadline)
            timeout = isinstance(exc, httpx.TimeoutException | DeadlineExceeded)
            raise
        finally:
            metrics.PROVIDER_CALL_SECONDS.labels(self._provider, endpoint).observe(
                time.perf_counter() - started
            )
            label = metrics.status_label(status, timeout=timeout)
            metrics.PROVIDER_CALLS.labels(self._provider, endpoint, label).inc()
            call_log.note(endpoint, status)

    def close(self) -> None:
        """Not the shared transport's to close."""


def reset() -> None:
    """Close this process's transports (at exit, or between tests)."""
    with _lock:
        pid = os.getpid()
        for key in [k for k in _transports if k[0] == pid]:
            _transports.pop(key).close()


atexit.register(reset)


def _green() -> bool:
    """True in a gevent worker (threading monkey-patched): spawn greenlets, not threads."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("threading"))


class DeadlineExceeded(Exception):
    """A call outlasted its overall deadline (raised only in a gevent worker)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """At most `seconds` for the block, in a gevent worker (elsewhere httpx's per-phase
    timeouts are all there is)."""
    if not _green():
        yield
        return
    import gevent

    with gevent.Timeout(seconds, DeadlineExceeded):
        yield


def _in_context(call: Callable[[], T]) -> Callable[[], T]:
    context = contextvars.copy_context()
    return lambda: context.run(call)


_executor: tuple[int, ThreadPoolExecutor] | None = None
_THREAD_PREFIX = "cv-io"


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent provider calls at once; their results in order. Every call is
    waited for before the first error (if any) is raised; in a gevent worker, calls
    still running when the caller is interrupted (its time limit) are killed."""
    if len(calls) == 1:
        return [calls[0]()]
    # Each call in a copy of the caller's context: what it notes (providers.calls) and
    # logs (the request id) is the caller's.
    calls = tuple(_in_context(call) for call in calls)
    if _green():
        import gevent

        def capture(call: Callable[[], Any]) -> tuple[bool, Any]:
            try:
                return True, call()
            except Exception as exc:  # handed to the caller below, not to gevent's hub
                return False, exc

        greenlets = [gevent.spawn(capture, call) for call in calls]
        try:
            gevent.joinall(greenlets)
        finally:
            gevent.killall(greenlets)
        outcomes = [g.value for g in greenlets]
    elif threading.current_thread().name.startswith(_THREAD_PREFIX):
        # Called from a call that runs at once already: one after the other, here. (To
        # wait on the shared pool from inside it could wait for ever.)
        outcomes = []
        for call in calls:
            try:
                outcomes.append((True, call()))
            except Exception as exc:
                outcomes.append((False, exc))
    else:
        # The first call runs in this thread, the others in the shared pool.
        global _executor
        if _executor is None or _executor[0] != os.getpid():
            pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix=_THREAD_PREFIX)
            _executor = (os.getpid(), pool)
        futures: list[Future[Any]] = [_executor[1].submit(call) for call in calls[1:]]
        try:
            first: tuple[bool, Any] = (True, calls[0]())
        except Exception as exc:
            first = (False, exc)
        wait(futures)
        outcomes = [first] + [
            (True, f.result()) if f.exception() is None else (False, f.exception()) for f in futures
        ]
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]
