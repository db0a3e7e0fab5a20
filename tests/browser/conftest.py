"""A real browser for the tests: Debian's Chromium (`make test` installs it when missing),
headless, driven by Playwright's Python package, which is pointed at that browser: its
own browser downloads are not used. The service is the end-to-end one (tests/e2e/stack.py).

The browser has no network but loopback: it resolves no host name but localhost, and
every page the tests open goes through :class:`Browsing`, which refuses a request for
anything but loopback and records every request, so a page that needs the internet
fails its test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    expect,
    sync_playwright,
)

from tests.e2e.stack import service

__all__ = ["Browsing", "browser", "browsing", "service"]

CHROMIUM = os.environ.get("CV_TEST_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Every wait in a page (navigation, a click, an expectation) fails after this long.
PAGE_TIMEOUT_MS = 15_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)


# Per module, never per session: Playwright's sync API runs an event loop in the main
# thread while it is started, and the tests after these (asyncio.run in e2e and fault
# tests) must find none.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's (apt-get install"
            " chromium); or set CV_TEST_CHROMIUM, or leave these out with -m 'not browser'",
            pytrace=False,
        )
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        # no name resolves but localhost's: nothing reaches the internet, whoever asks
        args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"],
    )
    yield launched
    launched.close()


def offsite(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK


class Browsing:
    """Pages in fresh browser contexts that reach loopback only. `offsite` lists the
    requests for anywhere else (refused); `visited` every URL the pages asked for, in
    order, redirects included; `errors` what the pages' consoles reported as errors (a
    Content-Security-Policy refusal among them) and their uncaught exceptions."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.offsite: list[str] = []
        self.visited: list[str] = []
        self.errors: list[str] = []
        self._contexts: list[BrowserContext] = []

    def new_page(self, **context_options: Any) -> Page:
        context = self.browser.new_context(**context_options)
        self._contexts.append(context)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.on("request", self._seen)
        context.route("**/*", self._only_loopback)
        page = context.new_page()
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def _seen(self, request: Request) -> None:
        self.visited.append(request.url)
        if offsite(request.url):
            self.offsite.append(request.url)

    @staticmethod
    def _only_loopback(route: Route) -> None:
        if offsite(route.request.url):
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    pages = Browsing(browser)
    yield pages
    pages.close()
