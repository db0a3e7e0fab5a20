"""Request rates (SPEC §4), kept in Redis so that every web process counts the same:
per client and per user on the API (per source address for a request without a valid
token), per source address on the OAuth callback and the providers' webhooks. Over a
rate: RATE_LIMIT_EXCEEDED (429) with `Retry-After`.

The `limits` library does the counting (a fixed window per minute: one counter per key,
one round trip). A Redis that cannot be reached lets requests through, with a warning:
a blip must not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import redis.asyncio
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request
from starlette.responses import Response

from api.errors import json_error
from settings import Settings
from workflows.errors import DomainError, ErrorCode
from workflows.user_tokens import Principal

__all__ = ["RateLimited", "RateLimits"]

log = logging.getLogger(__name__)


class RateLimited(DomainError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(ErrorCode.RATE_LIMIT_EXCEEDED)
        self.retry_after = retry_after


class RateLimits:
    """The process's limiter (one Redis connection pool), made by the app."""

    def __init__(self, settings: Settings) -> None:
        # Our own pool, so that the app's shutdown closes it (aclose).
        self._pool: redis.asyncio.ConnectionPool[Any] = redis.asyncio.ConnectionPool.from_url(
            settings.events_url
        )
        storage = storage_from_string(
            f"async+{settings.events_url}",
            implementation="redispy",
            key_prefix="cv:rate",
            # passed on to redis-py as is; `limits` annotates its options too narrowly
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._limiter = FixedWindowRateLimiter(storage)
        self._client = RateLimitItemPerMinute(settings.rate_client_per_minute)
        self._user = RateLimitItemPerMinute(settings.rate_user_per_minute)
        self._address = RateLimitItemPerMinute(settings.rate_address_per_minute)
        self._warned_at = 0.0

    async def aclose(self) -> None:
        await self._pool.disconnect()

    async def _hit(self, item: RateLimitItem, *key: str) -> None:
        try:
            if await self._limiter.hit(item, *key):
                return
            reset, _ = await self._limiter.get_window_stats(item, *key)
        except Exception as exc:  # Redis unreachable: count nothing, say so now and then
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limits not counted (%s)", type(exc).__name__)
            return
        raise RateLimited(max(1, math.ceil(reset - time.time())))

    async def caller(self, who: Principal) -> None:
        """One API request of this client's user: counts for the client and the user."""
        await self._hit(self._client, "client", who.client_id)
        await self._hit(self._user, "user", who.client_id, who.user_id)

    async def unauthenticated(self, source: str | None) -> None:
        """An API request with a missing or bad token: it has no client or user to count
        against, so it counts against its source address (the callback's rate), which
        bounds guessing tokens. Raises RateLimited when over."""
        await self._hit(self._address, "api", source or "unknown")

    async def address(self, request: Request, what: str) -> Response | None:
        """A request to an unauthenticated endpoint (`what`), by its source address: None
        when within the rate, else the 429 to answer."""
        source = request.client.host if request.client else "unknown"
        try:
            await self._hit(self._address, what, source)
        except RateLimited as limited:
            return too_many(limited)
        return None


def too_many(limited: RateLimited) -> Response:
    """The operators' error body (api.errors), with the wait in `Retry-After`."""
    response = json_error(limited)
    response.headers["retry-after"] = str(limited.retry_after)
    return response
