"""A vehicle's history shows a client's webhook URL without what may carry a secret."""

from __future__ import annotations

import pytest

from workflows.history import without_query


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.acme.example/cv?token=s3cret", "https://hooks.acme.example/cv"),
        ("https://user:pw@hooks.acme.example:8443/a/b#x", "https://hooks.acme.example:8443/a/b"),
        ("https://hooks.acme.example/plain", "https://hooks.acme.example/plain"),
    ],
)
def test_a_webhook_url_loses_its_query_and_credentials(url: str, shown: str) -> None:
    assert without_query(url) == shown
