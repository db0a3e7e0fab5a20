"""`python -m api.exporter`: the metrics of a host that runs workers and no web.

Every worker process of a host counts into `CV_METRICS_DIR` (prometheus-client's
multiprocess mode); on a host with a web, the web's ``/metrics`` adds them up. On a host
without one, this serves the same sum at ``GET /metrics`` on `CV_METRICS_HOST` and
`CV_METRICS_PORT` (9108), behind the same `CV_METRICS_TOKEN`. It adds none of the web's
service-wide gauges (queue depth, outbox lag): those would be counted once per host.
It needs neither the database nor the broker, and refuses to start without the directory
or the token, saying which."""

from __future__ import annotations

import argparse
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import logconfig
from api.metrics import route as metrics_route
from settings import Settings, get_settings

__all__ = ["create_app", "main", "problem"]


def problem(settings: Settings) -> str | None:
    """Why this exporter cannot serve anything useful, or None."""
    if not settings.metrics_dir:
        return "CV_METRICS_DIR is not set: the workers of this host write no metrics to export"
    if not settings.metrics_token.get_secret_value():
        return "CV_METRICS_TOKEN is not set: /metrics would answer 404"
    return None


async def _ready(request: Request) -> Response:
    return JSONResponse({"ready": True})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    found = problem(settings)
    if found is not None:
        raise RuntimeError(found)
    return Starlette(routes=[metrics_route(settings), Route("/healthz", _ready)])


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api.exporter", description=__doc__)
    parser.add_argument("--host", default=settings.metrics_host, help="address to bind")
    parser.add_argument("--port", type=int, default=settings.metrics_port, help="port to bind")
    args = parser.parse_args(argv)
    found = problem(settings)
    if found is not None:
        print(f"refusing to start: {found}", file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG, as the workers
    uvicorn.run(
        "api.exporter:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=logconfig.dict_config(settings.log_format, settings.log_level),
    )


if __name__ == "__main__":
    main()
