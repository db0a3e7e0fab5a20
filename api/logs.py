"""Keep OAuth codes and states out of the access log: the callback's query carries them.
The redaction itself lives with the rest of logging (logconfig), applied in every format."""

from __future__ import annotations

from logconfig import RedactSecrets, configure, redact
from settings import Settings

__all__ = ["RedactSecrets", "install", "redact"]


def install(settings: Settings) -> None:
    """The web's logging (unless the process set it up already: uvicorn's log config)."""
    configure(settings.log_format, settings.log_level)
