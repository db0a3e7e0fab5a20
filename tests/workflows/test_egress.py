"""Where a client's webhooks may go (SPEC §4): https, public addresses only, checked at
creation and again at every delivery; the request goes to the address checked."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from harness.tenant import Tenant
from store.db import Database
from store.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from workflows import webhook_delivery, webhook_endpoints
from workflows.egress import UnsafeURL, target_of
from workflows.errors import DomainError

# The probe's table (issue 10), and more of the same kind: each resolves to an address
# the service must never send a client's signed events to.
REFUSED = [
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service (and http)
    "https://169.254.169.254/latest/meta-data/",
    "https://localhost:6392/",
    "https://[::1]/hook",
    "https://0x7f000001/",  # 127.0.0.1, spelled as a number
    "https://127.1/",  # 127.0.0.1, short form
    "https://10.0.0.8/hook",
    "https://192.168.1.20/hook",
    "https://172.16.0.1/hook",
    "https://[fe80::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://0.0.0.0/hook",
    "https://user:pass@hooks.example/",  # credentials in the URL
    "ftp://hooks.example/",
    "https://no-such-host.invalid/",  # does not resolve
]
# Malformed (issue 17: each was an internal error): urllib raises ValueError on parsing.
MALFORMED = [
    "https://a.example:99999/x",
    "https://a.example:abc/x",
    "https://a.example:-1/x",
    "https://a.example:0/x",
    "https://[::1/x",
    "https://[zz]/x",
]


@pytest.mark.parametrize("url", REFUSED)
def test_an_internal_or_odd_url_is_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        target_of(url)


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_is_refused_saying_so(url: str) -> None:
    with pytest.raises(UnsafeURL, match=r"the URL is malformed: its (port|host)") as refused:
        target_of(url)
    assert "a.example" not in str(refused.value)  # the reason quotes nothing of it


def public_dns(address: str) -> Any:
    """A resolver that answers `address` for any name (this machine has no internet)."""

    def resolve(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


def test_a_public_https_url_goes_to_the_address_checked() -> None:
    target = target_of("https://hooks.example:8443/in?x=1", resolve=public_dns("93.184.216.34"))
    assert target.url == "https://93.184.216.34:8443/in?x=1"
    assert (target.host, target.sni) == ("hooks.example:8443", "hooks.example")


def test_a_name_that_also_resolves_inside_is_refused() -> None:
    """An attacker's DNS may answer a public and a private address at once."""

    def both(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.8", port)),
        ]

    with pytest.raises(UnsafeURL, match="private"):
        target_of("https://hooks.example/", resolve=both)


def test_http_and_loopback_only_where_an_operator_allowed_them() -> None:
    assert target_of("http://127.0.0.1:9000/x", allow_private=True).url == (
        "http://127.0.0.1:9000/x"
    )
    with pytest.raises(UnsafeURL, match="https"):
        target_of("http://127.0.0.1:9000/x")


def test_an_endpoint_on_an_internal_address_cannot_be_made(clean: Database, tenant: Tenant) -> None:
    with clean.session() as session, pytest.raises(DomainError) as refused:
        webhook_endpoints.create_endpoint(session, tenant.client_id, "https://127.1/hook")
    assert refused.value.code.value == "BAD_USER_INPUT"
    assert "loopback" in refused.value.message
    with clean.session() as session:
        assert session.query(WebhookEndpoint).count() == 0


def test_a_delivery_is_checked_again_and_never_sent_inside(clean: Database, tenant: Tenant) -> None:
    """Made while allowed (or while the name resolved outside), delivered under the
    rule: nothing is sent, the attempt says why, and the schedule goes on."""
    sent: list[httpx.Request] = []
    with clean.session() as session:
        endpoint = webhook_endpoints.create_endpoint(
            session, tenant.client_id, "http://127.0.0.1:9/hook", allow_private=True
        )
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id, event_id="e1", event_type="t", body="{}", status="pending"
        )
        session.add(delivery)
        session.commit()
        delivery_id = delivery.id

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    status = webhook_delivery.attempt(clean, delivery_id, transport=httpx.MockTransport(receive))

    assert (status, sent) == ("pending", [])
    with clean.session() as session:
        (attempt,) = session.query(WebhookAttempt).all()
        assert attempt.error and attempt.error.startswith("refused:")
