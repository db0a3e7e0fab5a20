"""The fault tests' broker: a Redis db of their own, flushed before and after, so that
the session's in-process worker never takes their work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_BASE, REDIS_DB


@pytest.fixture
def broker() -> Iterator[str]:
    import redis

    url = f"{REDIS_BASE}/{REDIS_DB + 1}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
