"""Pages in a real browser that reach loopback only (the browser tests' fixtures are in
tests/browser/conftest.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Request, Route

__all__ = ["LOOPBACK", "PAGE_TIMEOUT_MS", "Browsing", "offsite"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Every wait in a page (navigation, a click, an expectation) fails after this long.
PAGE_TIMEOUT_MS = 15_000


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
