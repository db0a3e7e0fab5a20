"""GraphiQL, served whole by the service: the page at ``GET /graphql`` (a browser's), and
its files at ``/graphiql/static/``. Nothing comes from another origin, so it works on a
machine with no internet.

The page (``index.html``) and its own script and style (``static/``) live here. GraphiQL
and React are the npm registry's packages at the versions and digests pinned in
``assets.json``, installed into the environment by ``scripts/graphiql_assets.py`` (run
by ``make venv``), never fetched at run time. A small form on the page fills the API's
two headers (``x-client-id``, ``authorization: Bearer <user token>``), and the editor
opens on the demo's example document (``static/cv-example.graphql``: the README's
walk-through, as operations to run one by one) instead of GraphiQL's stock text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS_DIR", "CSP", "STATIC_PATH", "page", "static_files"]

HERE = Path(__file__).resolve().parent
ASSETS_DIR = Path(sys.prefix) / "share" / "cv-graphiql"  # scripts/graphiql_assets.py's
STATIC_PATH = "/graphiql/static"

# Scripts from this origin only (a CDN reference fails loudly), no inline script, no
# eval; queries and subscriptions to this origin only; GraphiQL's stylesheet carries
# its fonts and icons as data: URLs.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GraphiQL is not installed</title></head>
<body><h1>GraphiQL's files are not installed</h1>
<p>This environment has no GraphiQL files at the pinned versions ({where}).
Run <code>make venv</code> (it runs <code>scripts/graphiql_assets.py</code>), then restart
the web process. The API itself works: POST GraphQL to this URL.</p></body></html>
"""


def installed(assets: Path = ASSETS_DIR) -> bool:
    """Whether `assets` holds the files at the versions ``assets.json`` pins."""
    try:
        pins = json.loads((HERE / "assets.json").read_text())["packages"]
        return bool(json.loads((assets / "installed.json").read_text()) == pins)
    except (OSError, ValueError):
        return False


def page(assets: Path = ASSETS_DIR) -> Response:
    """The GraphiQL page; when the files are missing or stale, a page that says how to
    install them (503) rather than a blank one."""
    if not installed(assets):
        return HTMLResponse(_MISSING.format(where=assets), 503, headers=_HEADERS)
    return HTMLResponse((HERE / "index.html").read_text(), headers=_HEADERS)


def static_files(assets: Path = ASSETS_DIR) -> StaticFiles:
    """The page's files (``static/`` here) and GraphiQL's (`assets`), at one path."""
    return StaticFiles(
        directory=assets if assets.is_dir() else None,
        packages=[("api.graphiql", "static")],
    )
