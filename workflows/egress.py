"""Where the service may send a client's webhooks (SPEC §4): https, to an address on the
public internet, checked when the endpoint is made and again at every delivery (a name
can resolve elsewhere tomorrow: DNS rebinding). A delivery connects to the very address
it checked (the name still in the Host header and TLS's SNI, so the certificate is
verified against it) and follows no redirect.

`allow_private` (CV_WEBHOOKS_ALLOW_PRIVATE, for local development) lets http and
loopback or private addresses through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Resolver", "Target", "UnsafeURL", "target_of"]

Resolver = Callable[..., list[tuple[Any, ...]]]


class UnsafeURL(ValueError):
    """A webhook URL the service will not send to; the message says why (no secret)."""


@dataclass(frozen=True)
class Target:
    """Where to connect (`url`, its host an address that was checked) and what to say
    the host is (`host`: the Host header and TLS's SNI)."""

    url: str
    host: str
    sni: str  # the name the certificate must be for


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "reserved"
    if not address.is_global:
        return "not public"
    return None


def _reason(exc: ValueError) -> str:
    """What urllib found wrong, in words that quote nothing of the URL."""
    text = str(exc)
    if "Port" in text or "port" in text:
        return "its port is not a number from 1 to 65535"
    if "IPv6" in text or "bracket" in text or "]" in text:
        return "its host's brackets do not hold an IPv6 address"
    return "it cannot be parsed"


def target_of(
    url: str, *, allow_private: bool = False, resolve: Resolver = socket.getaddrinfo
) -> Target:
    """The address to send to for `url`, checked; UnsafeURL when the rule refuses it.
    Every address the name resolves to must pass (an attacker's DNS may answer both)."""
    try:
        # urlsplit refuses bad brackets, and .port a port that is not 0 to 65535, with a
        # ValueError: a malformed URL, said as such (the message names no part of it).
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"the URL is malformed: {_reason(exc)}") from exc
    if explicit_port == 0:
        raise UnsafeURL("the URL is malformed: its port is not a number from 1 to 65535")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURL("the URL must be an absolute https URL")
    if parts.scheme == "http" and not allow_private:
        raise UnsafeURL("the URL must be https")
    if parts.username or parts.password:
        raise UnsafeURL("the URL must carry no credentials")
    host = parts.hostname
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"the host {host!r} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"the host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            why = _refused(address)
            if why is not None:
                raise UnsafeURL(f"the host {host!r} resolves to a {why} address")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{port}" if explicit_port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(url=pinned, host=parts.netloc, sni=host)
