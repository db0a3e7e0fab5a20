"""Start Flower behind basic auth, with the login from the settings.

The login is handed over in Flower's own environment variable, not on the command line,
where any user of the machine could read it. Flower runs in this process (not exec'd),
so that its handlers can be mended before its app is built: `/metrics` and
`/healthcheck` answer without a login in Flower itself, and here they ask for one; the
operators' console is added (`workers.console`: the Vehicles view, a vehicle's history,
bulk re-drives, and task pages that say what became of a step's vehicle).
"""

from __future__ import annotations

import os
import sys

import tornado.web

from settings import get_settings

__all__ = ["OPEN_IN_FLOWER", "guard", "main"]

# Flower's handlers that skip its login (flower.views.monitor): the metrics name the
# workers and tasks, and neither should be open to whoever reaches the port.
OPEN_IN_FLOWER = ("Metrics", "Healthcheck")


def guard() -> None:
    """Put Flower's open handlers behind its login, and add the operators' console
    (idempotent)."""
    from flower import urls
    from flower.views import monitor

    from workers.console import install

    install(urls.handlers)

    for name in OPEN_IN_FLOWER:
        handler = getattr(monitor, name)
        if not getattr(handler.get, "cv_guarded", False):
            guarded = tornado.web.authenticated(handler.get)
            guarded.cv_guarded = True  # type: ignore[attr-defined]
            handler.get = guarded


def main() -> None:
    settings = get_settings()
    login = settings.flower_basic_auth.get_secret_value()
    if ":" not in login:
        sys.exit("CV_FLOWER_BASIC_AUTH must be user:password: Flower is never open to all")
    os.environ["FLOWER_BASIC_AUTH"] = login
    guard()
    from celery.bin.celery import main as celery

    sys.argv = [
        "celery",
        "-A",
        "workers.app",
        "flower",
        f"--address={settings.flower_host}",
        f"--port={settings.flower_port}",
    ]
    sys.exit(celery())


if __name__ == "__main__":
    main()
