"""Work that must run to its end once started: spending a single-use code or refresh
token and committing what it bought."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["to_the_end", "uninterrupted"]

T = TypeVar("T")
P = ParamSpec("P")


def uninterrupted(work: Callable[[], T]) -> T:
    """`work()`, run to its end even if the caller is stopped while it runs.

    On gevent (the Procfile's workers) a task is stopped by killing its greenlet: its
    time limit, or Celery cancelling the tasks in flight when the broker connection
    drops. Killed between sending a code and committing the tokens it bought, the step
    would lose both (the code is single use). So `work` runs in a greenlet of its own,
    which the kill does not reach: the caller stops, the exchange finishes and commits.
    Elsewhere (threads, prefork, a test) it is a plain call: nothing kills a thread."""
    try:
        from gevent import monkey, spawn
    except ImportError:  # pragma: no cover - gevent is a dependency
        return work()
    if not monkey.is_module_patched("socket"):
        return work()
    context = contextvars.copy_context()  # the request id and vehicle on its log lines

    def outcome() -> tuple[bool, Any]:
        # Caught here and raised in the caller: a greenlet that dies of an exception is
        # also printed by gevent's hub, and these are the step's ordinary outcomes
        # (a refused code, an answer lost).
        try:
            return True, context.run(work)
        except BaseException as exc:
            return False, exc

    done, value = spawn(outcome).get()
    if not done:
        raise value
    return value  # type: ignore[no-any-return]


def to_the_end(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn`, each call of it `uninterrupted`."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return uninterrupted(functools.partial(fn, *args, **kwargs))

    return call
