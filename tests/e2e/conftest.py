"""The `service` fixture (tests/e2e/stack.py), for the end-to-end tests."""

from tests.e2e.stack import service

__all__ = ["service"]
