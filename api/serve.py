"""The Procfile's `web`: uvicorn serving the app on the settings' host and port
(`CV_WEB_HOST`, `CV_WEB_PORT` or a platform's `$PORT`) with `CV_WEB_PROCESSES`
processes. The options override the settings (the bench and the tests pick a port)."""

from __future__ import annotations

import argparse

import uvicorn

import logconfig
from settings import get_settings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__)
    parser.add_argument("--host", default=settings.web_host, help="address to bind")
    parser.add_argument("--port", type=int, default=settings.web_port, help="port to bind")
    parser.add_argument(
        "--workers", type=int, default=settings.web_processes, help="uvicorn processes"
    )
    args = parser.parse_args(argv)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # A WebSocket message over the cap is refused (1009) before it is read whole, as
        # an HTTP body over it is (api.limits.BodyLimit, which checks the messages too).
        ws_max_size=settings.request_max_bytes,
        # uvicorn's own lines too: JSON (or text) with the request id, secrets redacted.
        log_config=logconfig.dict_config(settings.log_format, settings.log_level),
    )


if __name__ == "__main__":
    main()
