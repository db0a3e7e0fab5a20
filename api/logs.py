"""Keep OAuth codes and states out of the access log: the callback's query carries them."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactSecrets", "install"]

_SECRET_PARAMS = re.compile(r"(?P<key>(?:^|[?&])(?:code|state|token|access_token)=)[^&\s]*")


def redact(text: str) -> str:
    return _SECRET_PARAMS.sub(r"\g<key>[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites uvicorn's access-log arguments (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
