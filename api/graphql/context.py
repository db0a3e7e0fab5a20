"""Per request: the context every resolver reads, and who may call (SPEC §3).

Authentication is a Strawberry permission on every field, checked before the resolver
runs: :class:`Caller` (a valid token, counted against the rates) or :class:`Admin` (the
client's administrators). A resolver then reads the checked caller as ``ctx.caller``.
Their errors (``DomainError``, ``RateLimited``) become GraphQL errors with
``extensions.code`` in :meth:`api.graphql.schema.Schema.process_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from strawberry.permission import BasePermission
from strawberry.types import Info

import logconfig
from api import work
from api.errors import RETRY_AFTER_UNAVAILABLE
from api.ratelimit import RateLimited, RateLimits
from api.wakeups import Wakeups
from settings import Settings
from store.db import Database
from workflows.errors import DomainError, ErrorCode
from workflows.signing_secrets import SigningSecrets
from workflows.user_tokens import Principal

__all__ = ["Admin", "Caller", "Context", "context_of", "wait_for"]

T = TypeVar("T")

_NO_VALID_TOKEN = (ErrorCode.AUTH_TOKEN_INVALID, ErrorCode.AUTH_TOKEN_EXPIRED)


class Context:
    """Per request: the database, the settings, and the caller (checked on first use);
    the process's cache of signing secrets and its listener of vehicles' changes."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        headers: Any,
        *,
        signing_secrets: SigningSecrets,
        wakeups: Wakeups,
        rate_limits: RateLimits | None = None,
        response: Any = None,
        source: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.signing_secrets = signing_secrets
        self.wakeups = wakeups
        self.rate_limits = rate_limits
        # The HTTP response being made (None on a WebSocket): a 429 sets its status and
        # Retry-After header.
        self.response = response
        # The client's address: a request without a valid token is counted against it.
        self.source = source
        self._headers = headers
        self._principal: Principal | None = None
        self._checking: asyncio.Future[Principal] | None = None
        # graphql-transport-ws: the `connection_init` payload (browsers cannot set
        # headers on a WebSocket); Strawberry sets it here.
        self.connection_params: dict[str, Any] | None = None

    def _credentials(self) -> tuple[str | None, str | None]:
        sources = [self._headers, self.connection_params or {}]
        client_id = next((s.get("x-client-id") for s in sources if s.get("x-client-id")), None)
        auth = next((s.get("authorization") for s in sources if s.get("authorization")), "")
        token = auth[7:].strip() if str(auth).lower().startswith("bearer ") else None
        return client_id, token

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a worker thread, with a session of its own (run again
        once on a fresh connection when the database dropped it before any commit).
        A database still away is SERVICE_UNAVAILABLE (retryable, HTTP 503); a vehicle
        that cannot be read is marked for operators, and CONNECTED_VEHICLE_UNREADABLE."""
        try:
            return await work.run(self.db, fn)
        except work.ServiceUnavailable:
            self.unavailable()
            raise

    async def principal(self) -> Principal:
        """The caller: from the cached signing secret on the event loop (no thread hop),
        else from the client's row in a worker thread (once per client and TTL); then
        counted against the client's and the user's rates. Once per request: fields
        resolved at once share one check (and its failure), shielded from the
        cancellation of any one of them. A check that failed for a passing reason (the
        database away, a rate) is made again by the next asker: a WebSocket's context
        lives as long as its connection."""
        if self._checking is None or _passed(self._checking):
            self._checking = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._checking)

    async def _check(self) -> Principal:
        client_id, token = self._credentials()
        try:
            who = self.signing_secrets.verify(client_id, token)
            if who is None:
                who = await self.run(
                    lambda s: self.signing_secrets.verify_from(s, client_id, token)
                )
        except DomainError as refused:
            # No valid token, so no client or user to count: the source address is
            # counted instead (a valid caller never is), and once over it is answered
            # RATE_LIMIT_EXCEEDED rather than the refusal.
            if self.rate_limits is not None and refused.code in _NO_VALID_TOKEN:
                try:
                    await self.rate_limits.unauthenticated(self.source)
                except RateLimited as limited:
                    self.limited(limited)
                    raise limited from refused
            raise
        logconfig.bind(client_id=who.client_id)  # the request's log lines name its client
        if self.rate_limits is not None:
            try:
                await self.rate_limits.caller(who)
            except RateLimited as limited:
                self.limited(limited)
                raise
        self._principal = who
        return who

    @property
    def caller(self) -> Principal:
        """The caller, as the field's permission checked it (:class:`Caller`, :class:`Admin`)."""
        if self._principal is None:
            raise RuntimeError(
                "no permission checked the caller: give the field"
                " permission_classes=[Caller] (or [Admin])"
            )
        return self._principal

    def limited(self, limited: RateLimited) -> None:
        """Answer 429 with Retry-After (the error itself says RATE_LIMIT_EXCEEDED)."""
        if self.response is not None:
            self.response.status_code = 429
            self.response.headers["retry-after"] = str(limited.retry_after)

    def unavailable(self) -> None:
        """Answer 503 with Retry-After (the error itself says SERVICE_UNAVAILABLE)."""
        if self.response is not None:
            self.response.status_code = 503
            self.response.headers["retry-after"] = str(RETRY_AFTER_UNAVAILABLE)


def _passed(check: asyncio.Future[Principal]) -> bool:
    """Whether `check` ended in a failure that asking again may not meet."""
    if not check.done() or check.cancelled():
        return check.cancelled()
    failure = check.exception()
    return isinstance(failure, DomainError) and failure.code.retryable


def context_of(info: Info) -> Context:
    ctx: Context = info.context
    return ctx


class Caller(BasePermission):
    """A valid token of a known client, within the rates. `principal()` raises the
    refusal itself (AUTH_TOKEN_*, RATE_LIMIT_EXCEEDED), so the error keeps its code."""

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await context_of(info).principal()
        return True


class Admin(BasePermission):
    """A caller whose token says `admin: true`: the client's administrators."""

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        who = await context_of(info).principal()
        if not who.admin:
            raise DomainError(ErrorCode.NOT_ALLOWED)
        return True


async def wait_for(
    ctx: Context,
    vehicle_id: str,
    first: Callable[[Session], T],
    again: Callable[[Session], T],
    done: Callable[[T], bool],
) -> T:
    """Read with `first`; until `done` says so or the bounded wait
    (CV_MUTATION_WAIT_SECONDS) runs out, wait for the vehicle's change (a wake from
    CHANGED) and read `again`. The database is the truth, whatever the broker did: a
    wake only says when to look, and a slow re-read every `wait_recheck_seconds` covers
    a wake that was lost. Watching starts before the first read: no change is missed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.mutation_wait_seconds
    async with ctx.wakeups.watch(vehicle_id) as changed:
        value = await ctx.run(first)
        while not done(value):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    changed.wait(), min(remaining, ctx.settings.wait_recheck_seconds)
                )
            changed.clear()  # before the read: a change after it wakes the next wait
            value = await ctx.run(again)
    return value
