"""What a user does in a browser on a fake provider's consent page, over real HTTP: open
the authorization URL, log in as one of the fake's accounts, press Allow (or Deny).

Shared by the tests and the benchmarks (both drive the service the way its users do).
"""

from __future__ import annotations

import html
import re

import httpx

__all__ = ["ConsentError", "consent"]

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_FORM = re.compile(r'<form method="post" action="([^"]+)"')


class ConsentError(AssertionError):
    """The consent page did not behave like one (an AssertionError: tests fail on it)."""


def consent(
    authorization_url: str,
    *,
    account: str = "demo",
    decision: str = "allow",
    client: httpx.Client | None = None,
) -> str:
    """Log in as `account` and answer `decision` ("allow" or "deny"); return the URL the
    provider sends the user back to. `client` lets a caller that consents many times
    keep its connections (it must not follow redirects)."""
    if client is None:
        with httpx.Client(follow_redirects=False, timeout=10) as browser:
            return consent(authorization_url, account=account, decision=decision, client=browser)
    page = client.get(authorization_url, follow_redirects=False)
    if page.status_code != 200:
        raise ConsentError(f"consent page answered {page.status_code}: {page.text[:500]}")
    fields = {k: html.unescape(v) for k, v in _HIDDEN.findall(page.text)}
    found = _FORM.search(page.text)
    if found is None:
        raise ConsentError(f"no consent form on the page: {page.text[:500]}")
    action = httpx.URL(authorization_url).join(html.unescape(found.group(1)))
    answer = client.post(
        action,
        data={**fields, "account": account, "decision": decision},
        follow_redirects=False,
    )
    if answer.status_code not in (302, 303):
        raise ConsentError(f"consent answered {answer.status_code}: {answer.text[:500]}")
    return answer.headers["location"]
