"""Run the fake providers for the local demo: ``python -m providers.fakes --port 8100``.

Each fake is mounted under its own prefix (``/smartcar``); an OAuth app for the demo
client is registered from ``--app CLIENT_ID:SECRET:REDIRECT_URI`` options; ``--latency``
adds that many seconds to every provider call (not to the control API), as a real
provider's round trip would.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from providers.fakes import FAKES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="CLIENT_ID:SECRET:REDIRECT_URI",
        help="an OAuth app to register in every fake (repeatable)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds added to every provider call (e.g. 0.2); default 0",
    )
    args = parser.parse_args()
    mounts = []
    for name, cls in FAKES.items():
        fake = cls()
        fake.latency = args.latency
        for spec in args.app:
            client_id, secret, redirect = spec.split(":", 2)
            fake.apps[client_id] = {
                "client_secret": secret,
                "redirect_uris": [redirect],
            }
        mounts.append(Mount("/" + name.lower(), app=fake.app()))
    uvicorn.run(Starlette(routes=mounts), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
