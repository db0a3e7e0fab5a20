"""The machine's RabbitMQ, as its operator drives it."""

from __future__ import annotations

import subprocess

__all__ = ["rabbitmqctl"]


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout
