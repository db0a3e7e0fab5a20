"""The lines this process logs, as production writes them (logconfig's JSON handler)."""

from __future__ import annotations

import io
import json
from typing import Any

import logconfig

__all__ = ["JsonLines"]


class JsonLines:
    """Every line logged in this process (the web in process, the worker's threads), as
    production writes it: logconfig's JSON handler on the root logger."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logconfig.make_handler("json", self.stream)

    def __call__(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]
