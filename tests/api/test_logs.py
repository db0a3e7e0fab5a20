"""No OAuth code or state reaches the access log."""

from __future__ import annotations

import logging

from api.logs import RedactSecrets


def test_the_callback_query_is_redacted_in_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            "/oauth/callback?code=SECRETCODE&state=SECRETSTATE&x=1",
            "1.1",
            303,
        ),
        None,
    )
    RedactSecrets().filter(record)
    line = record.getMessage()
    assert "SECRETCODE" not in line and "SECRETSTATE" not in line
    assert "/oauth/callback?code=[redacted]&state=[redacted]&x=1" in line
