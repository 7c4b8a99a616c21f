"""Where webhooks may be sent: public addresses only, so a client's URL cannot reach into the server's own network.

A webhook URL is checked when it is saved and again each time an event is sent, on the
address actually connected to (a name that resolved to a public address when it was saved may
point somewhere else later). Loopback, private, link-local (cloud metadata at 169.254.169.254),
shared, multicast and reserved addresses are refused unless MODERATION_WEBHOOK_ALLOW_PRIVATE=1,
for a receiver on the same machine or network.
"""

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from .validation import InputError

ALLOW_PRIVATE = "MODERATION_WEBHOOK_ALLOW_PRIVATE"
SCHEMES = ("http", "https")


class RefusedAddress(OSError):
    """A webhook receiver whose address is not public: the send fails as an unreachable receiver would."""


def private_allowed() -> bool:
    """Whether this installation lets webhooks reach non-public addresses."""
    return os.environ.get(ALLOW_PRIVATE, "").strip() == "1"


def refusal(address: str) -> str | None:
    """Why an IP address may not receive webhooks, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if private_allowed() or (ip.is_global and not ip.is_multicast):
        return None
    kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local else "private" if ip.is_private
            else "multicast" if ip.is_multicast else "non-public")
    return f"{address} is a {kind} address; webhooks go to public addresses only (set {ALLOW_PRIVATE}=1 to allow it)"


def check_url(url: str) -> str:
    """A webhook URL as saved, or InputError saying what is wrong with it.

    A name that does not resolve now is accepted (its DNS may come later); each send checks it again.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InputError(f"the webhook URL cannot be read: {error}", "webhook_url") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise InputError("the webhook URL must start with https:// or http:// and name a host", "webhook_url")
    try:
        found = socket.getaddrinfo(parts.hostname, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return url
    for *_, address in found:
        reason = refusal(address[0])
        if reason:
            raise InputError(f"the webhook URL's host {parts.hostname!r} resolves to {reason}", "webhook_url")
    return url


def connect(address: tuple, timeout: float | None = None, source_address=None) -> socket.socket:
    """socket.create_connection, to the first public address the host resolves to (RefusedAddress if it has none)."""
    host, port = address
    refused, error = [], None
    for family, kind, protocol, _, target in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        reason = refusal(target[0])
        if reason:
            refused.append(reason)
            continue
        connection = socket.socket(family, kind, protocol)
        try:
            if isinstance(timeout, int | float):
                connection.settimeout(timeout)
            if source_address:
                connection.bind(source_address)
            connection.connect(target)
            return connection
        except OSError as failure:
            connection.close()
            error = failure
    if error is not None:
        raise error
    raise RefusedAddress(f"webhook host {host!r}: {refused[0] if refused else 'resolves to no address'}")
