"""Where merchant webhooks may go: https to a public address.

A ``notify_url`` is the merchant's input, and paycore POSTs to it from inside
the bank's network, so it must not become a way to reach that network
(loopback, RFC 1918, the cloud metadata address at 169.254.169.254, …).

Two checks, for two moments:

* :func:`url_problem` at payment creation looks at the URL's shape only
  (scheme, credentials, an address literal, names that are always internal)
  so that a merchant gets a clear 400 at once where the answer is known then;
* :func:`address_problem` at connect time (paycore.ops.webhooks) looks at the
  address the socket is about to connect to. That one is the real guard: a
  name that resolved to a public address at creation can resolve to
  127.0.0.1 a second later (DNS rebinding), and only the address actually
  connected to counts.

``[webhooks] allow_http`` and ``allow_private`` switch them off for the dev
stack and the tests, whose merchants listen on 127.0.0.1 over http.
"""
from __future__ import annotations

import errno
import ipaddress
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")       # RFC 6598 shared address space
_METADATA = ipaddress.ip_address("169.254.169.254")   # cloud instance metadata (AWS, GCP, Azure, Alibaba …)
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")         # RFC 6052: the low 32 bits are an IPv4 address
_V4_COMPATIBLE = ipaddress.ip_network("::/96")        # deprecated ::a.b.c.d
#: names that never leave the site whatever DNS says (RFC 6761 .localhost, mDNS .local, RFC 8375, common
#: private suffixes); a single-label name is resolved through the host's search domains, i.e. internally
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".corp")


class DestinationRefused(OSError):
    """A webhook destination is not allowed. An OSError (EACCES), so that the HTTP client reports it
    as a connection error; ``reason`` says why in words, ``kind`` is "address" or "scheme"."""

    def __init__(self, reason: str, kind: str = "address") -> None:
        super().__init__(errno.EACCES, f"destination refused: {reason}")
        self.reason = reason
        self.kind = kind


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):   # not :: nor ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(address: str | IPAddress) -> str | None:
    """Why a webhook may not connect to ``address`` (a few words), or None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = _embedded_v4(ip)
        if v4 is not None:
            inner = address_problem(v4)
            return f"{inner} ({v4} written as IPv6)" if inner else None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip == _METADATA:
        return "link-local (cloud metadata)"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if ip.version == 6 and ip in _UNIQUE_LOCAL:
        return "unique-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not public"
    return None


def url_problem(url: str, *, allow_http: bool, allow_private: bool) -> str | None:
    """What is wrong with ``url`` as a webhook destination that can be told without DNS, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port   # raises on a port out of range or not a number
    except ValueError:
        return "must be an http(s) URL with a valid host and port"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        return "must be an https URL" if not allow_http else "must be an http or https URL"
    if not host:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (user:password@)"
    if allow_private:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        why = address_problem(ip)
        return f"must reach a public address ({host} is {why})" if why else None
    name = host.rstrip(".")
    last = name.rpartition(".")[2]
    if last.isdigit() or last.startswith("0x"):
        # 127.1, 0x7f.0.0.1, 2130706433: the resolver reads them as IPv4 addresses
        return "must name a host, not a numeric address in another spelling"
    if "." not in name or name == "localhost" or name.endswith(_INTERNAL_SUFFIXES):
        return f"must reach a public host ({host} is an internal name)"
    return None
