"""A real browser for the tests: Debian's Chromium (`make test` installs it when missing),
headless, driven by Playwright's Python package, which is pointed at that browser: its
own browser downloads are not used. The service is the end-to-end one (tests/helpers/stack.py).

The browser has no network but loopback: it resolves no host name but localhost, and
every page the tests open goes through :class:`Browsing`, which refuses a request for
anything but loopback and records every request, so a page that needs the internet
fails its test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.helpers.browser import PAGE_TIMEOUT_MS, Browsing

__all__ = ["browser", "browsing"]

CHROMIUM = os.environ.get("CV_TEST_CHROMIUM", "/usr/bin/chromium")
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


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    pages = Browsing(browser)
    yield pages
    pages.close()
