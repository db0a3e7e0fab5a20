"""The request plumbing every adapter inherits (:class:`HttpPlumbing`): the credentials
and limits it is built with, a production URL under the configured base URL, a client
over the process's pooled transport, one request sent (a read re-tried inline while the
attempt's budget lasts), and a non-2xx answer classified, retryable or permanent.

An adapter is cheap: built per job from a client's credentials, it sends over the
process's pooled transport of each provider origin (``providers.http``), never a client
or SSL context of its own. A transport can be injected, so tests may run it against a
fake without patching anything.
"""

from __future__ import annotations

import functools
import time
from typing import Any, ClassVar

import httpx

from providers.errors import PermanentError, Reason, RetryableError, parse_retry_after
from providers.http import DeadlineExceeded, MeteredTransport, deadline, pooled_transport
from providers.names import Provider
from providers.retry import RetryPolicy
from providers.values import AppTokenCache, Credentials

__all__ = ["HttpPlumbing", "transport_failure"]


def transport_failure(provider: str, what: str, exc: Exception) -> RetryableError:
    """A request that got no answer. A connect error never left this host: safe to send
    again. Anything later (a read timeout, a dropped connection, our own deadline) may
    have been processed by the provider with its answer lost: the error says so, for
    requests that spend something single use (a code, a rotating refresh token)."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    detail = f"{what}: {type(exc).__name__}"
    return RetryableError(provider, detail, answer_lost=not never_sent)


@functools.cache
def _split(endpoints: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(path.strip("/").split("/")) for path in endpoints)


class HttpPlumbing:
    """How an adapter sends: its requests, their metrics, their inline re-tries and the
    classification of their answers."""

    provider: ClassVar[Provider]
    # The paths (of the production URLs) it calls, `{id}` for a segment that varies: the
    # `endpoint` label of its calls' metrics; a path not among them counts as `other`.
    endpoints: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        token_cache: AppTokenCache | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.credentials = credentials
        self._timeout = timeout
        self._transport = transport
        self._token_cache = token_cache
        self._policy = policy or RetryPolicy(max_attempts=1, base=0.0, cap=0.0)
        # Inline re-tries left to this adapter (one attempt of a step): see providers.retry.
        self._inline_left = self._policy.inline_retries
        self._clients: dict[str, httpx.Client] = {}

    def _endpoint(self, production: str) -> str:
        """A production URL, or the same path under the configured base URL."""
        base = self.credentials.base_url
        if not base:
            return production
        return base.rstrip("/") + httpx.URL(production).path

    def _transport_for(self, url: str) -> httpx.BaseTransport:
        """The pooled (or injected) transport of `url`, every call on it counted."""
        inner = self._transport or pooled_transport(url)
        base = self.credentials.base_url
        prefix = httpx.URL(base).path if base else ""
        return MeteredTransport(inner, self.provider, _split(self.endpoints), prefix)

    def _client(self, url: str) -> httpx.Client:
        """A client over the pooled transport of `url`'s origin (cheap: no pool, no SSL
        context of its own), kept for this adapter's calls; never closed, since closing
        it would close the shared transport."""
        origin = httpx.URL(url).copy_with(path="/", query=None, fragment=None)
        key = str(origin)
        client = self._clients.get(key)
        if client is None:
            client = httpx.Client(transport=self._transport_for(url), timeout=self._timeout)
            self._clients[key] = client
        return client

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures are retryable, non-2xx answers classified. A
        read that fails transiently is tried again at once while this attempt's inline
        budget lasts and the provider asks for a short wait; writes are tried once."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send_once(method, url, what, **kwargs)
            except RetryableError as exc:
                wait = self._policy.inline_wait(attempt, exc.retry_after)
                if (
                    method not in ("GET", "HEAD")
                    or self._inline_left <= 0
                    or wait > self._policy.inline_wait_max
                ):
                    raise
                self._inline_left -= 1
                time.sleep(wait)

    def _send_once(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            with deadline(self._timeout):
                response = self._client(url).request(method, url, timeout=self._timeout, **kwargs)
        except (httpx.TransportError, DeadlineExceeded) as exc:
            raise transport_failure(self.provider, what, exc) from exc
        if not response.is_success:
            raise self._classify(response, what)
        return response

    def _classify(self, response: httpx.Response, what: str) -> Exception:
        """Turn a non-2xx answer into a classified error (a provider override)."""
        status = response.status_code
        detail = f"{what} answered {status}"
        if status == 429 or status >= 500:
            return RetryableError(self.provider, detail, parse_retry_after(response))
        if status in (401, 403):
            return PermanentError(self.provider, Reason.ACCESS_REVOKED, detail)
        return PermanentError(self.provider, Reason.PROVIDER_REJECTED, detail)
