"""The providers' shared HTTP plumbing: one transport per origin per process, the
environment's proxy honoured, independent calls run at once."""

from __future__ import annotations

import threading
import time

import pytest

from providers import http


def test_one_transport_per_origin() -> None:
    a = http.pooled_transport("https://api.example.com/v2.0/vehicles")
    assert http.pooled_transport("https://api.example.com:443/other") is a
    assert http.pooled_transport("http://api.example.com/") is not a


def test_the_environments_proxy_is_honoured_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "fake.local")
    assert http._proxy_for("https", "api.smartcar.com") == "http://proxy.internal:3128"
    assert http._proxy_for("https", "fake.local") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert http._proxy_for("https", "api.smartcar.com") is None


def test_calls_run_at_once_and_answer_in_order() -> None:
    barrier = threading.Barrier(3, timeout=5)  # passes only if all three run together

    def call(n: int):
        return lambda: (barrier.wait(), n)[1]

    assert http.concurrently(call(1), call(2), call(3)) == [1, 2, 3]


def test_every_call_ends_before_an_error_is_raised() -> None:
    finished: list[str] = []

    def slow() -> str:
        time.sleep(0.2)
        finished.append("slow")
        return "slow"

    def broken() -> str:
        raise ValueError("no")

    with pytest.raises(ValueError):
        http.concurrently(broken, slow)
    assert finished == ["slow"]


def test_calls_at_once_inside_calls_at_once_do_not_starve_the_pool() -> None:
    def inner() -> list[int]:
        return http.concurrently(lambda: 1, lambda: 2)

    # more outer calls than the pool has threads: the inner ones run one after the other
    assert http.concurrently(*[inner] * 40) == [[1, 2]] * 40
