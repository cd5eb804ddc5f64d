"""Where merchant webhooks may go (paycore.destinations): the address rules the dispatcher applies to
every socket it is about to connect, and the shape rules a notify_url meets at payment creation."""
from __future__ import annotations

import aiohttp
import pytest

from paycore.core import validation
from paycore.destinations import DestinationRefused, address_problem, url_problem
from paycore.errors import InvalidRequest
from paycore.ops.webhooks import refusal_of

REFUSED = {
    "127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback",
    "169.254.169.254": "link-local (cloud metadata)", "169.254.1.1": "link-local", "fe80::1%eth0": "link-local",
    "10.0.0.1": "private", "172.16.5.4": "private", "192.168.1.1": "private",
    "100.64.0.1": "shared address space (CGNAT)", "100.127.255.254": "shared address space (CGNAT)",
    "fc00::1": "unique-local", "fd12:3456::1": "unique-local",
    "224.0.0.251": "multicast", "ff02::1": "multicast",
    "0.0.0.0": "unspecified", "::": "unspecified",
    "240.0.0.1": "reserved", "192.0.2.1": "private", "198.18.0.1": "private",
    # IPv4 written as IPv6: mapped, NAT64, 6to4, the deprecated compatible form
    "::ffff:127.0.0.1": "loopback (127.0.0.1 written as IPv6)",
    "::ffff:169.254.169.254": "link-local (cloud metadata) (169.254.169.254 written as IPv6)",
    "64:ff9b::a00:1": "private (10.0.0.1 written as IPv6)",
    "2002:c0a8:101::": "private (192.168.1.1 written as IPv6)",
    "::7f00:1": "loopback (127.0.0.1 written as IPv6)",
}
PUBLIC = ("8.8.8.8", "1.1.1.1", "100.128.0.1", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8")


@pytest.mark.parametrize("address", sorted(REFUSED))
def test_internal_addresses_are_refused_with_the_reason(address):
    assert address_problem(address) == REFUSED[address]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert address_problem(address) is None


@pytest.mark.parametrize("url, problem", [
    ("http://pay.example.com/hook", "must be an https URL"),
    ("ftp://pay.example.com/hook", "must be an https URL"),
    ("https://127.0.0.1/hook", "must reach a public address (127.0.0.1 is loopback)"),
    ("https://169.254.169.254/latest/meta-data", "must reach a public address (169.254.169.254 is link-local "
                                                 "(cloud metadata))"),
    ("https://[::ffff:10.0.0.1]/", "must reach a public address (::ffff:10.0.0.1 is private (10.0.0.1 "
                                   "written as IPv6))"),
    ("https://localhost:8443/hook", "must reach a public host (localhost is an internal name)"),
    ("https://api.localhost/hook", "must reach a public host (api.localhost is an internal name)"),
    ("https://metadata.google.internal/", "must reach a public host (metadata.google.internal is an internal name)"),
    ("https://intranet/hook", "must reach a public host (intranet is an internal name)"),
    ("https://127.1/hook", "must name a host, not a numeric address in another spelling"),
    ("https://2130706433/hook", "must name a host, not a numeric address in another spelling"),
    ("https://0x7f.0.0.1/hook", "must name a host, not a numeric address in another spelling"),
    ("https://shop:pw@pay.example.com/hook", "must not carry credentials (user:password@)"),
    ("https://pay.example.com:70000/hook", "must be an http(s) URL with a valid host and port"),
    ("https://[/hook", "must be an http(s) URL with a valid host and port"),
    ("https:///hook", "must name a host"),
])
def test_notify_url_shapes_that_are_refused(url, problem):
    assert url_problem(url, allow_http=False, allow_private=False) == problem


@pytest.mark.parametrize("url", ["https://pay.example.com/hook?x=1", "https://pay.example.com:8443/h",
                                 "https://8.8.8.8/hook", "https://[2606:4700::1111]/hook", "https://shop.example.cn."])
def test_public_https_urls_pass(url):
    assert url_problem(url, allow_http=False, allow_private=False) is None


def test_the_dev_settings_allow_http_and_private_destinations():
    assert url_problem("http://pay.example.com/", allow_http=True, allow_private=False) is None
    assert url_problem("http://127.0.0.1:9000/hook", allow_http=True, allow_private=False) is not None
    assert url_problem("http://127.0.0.1:9000/hook", allow_http=True, allow_private=True) is None
    assert url_problem("ftp://127.0.0.1/", allow_http=True, allow_private=True) == "must be an http or https URL"
    # credentials stay refused even in dev: they would sit in the payment row and the logs
    assert url_problem("http://u:p@127.0.0.1/", allow_http=True, allow_private=True) is not None


def payment(notify_url):
    return {"merchant_order_no": "o1", "amount": 100, "currency": "CNY", "method": "qr", "notify_url": notify_url}


def test_a_payment_with_an_internal_notify_url_is_a_400_naming_the_field():
    with pytest.raises(InvalidRequest) as e:
        validation.create_payment(payment("http://169.254.169.254/latest/meta-data/"))
    assert e.value.field == "notify_url" and "https" in str(e.value)
    with pytest.raises(InvalidRequest) as e:
        validation.create_payment(payment("https://10.0.0.7/hook"))
    assert e.value.field == "notify_url" and "10.0.0.7 is private" in str(e.value)
    ok = validation.create_payment(payment("https://pay.example.com/hook"))
    assert ok.notify_url == "https://pay.example.com/hook"
    dev = validation.create_payment(payment("http://127.0.0.1:9/h"), allow_http=True, allow_private=True)
    assert dev.notify_url == "http://127.0.0.1:9/h"


def test_refusals_are_told_from_other_connection_errors():
    key = object()
    one = aiohttp.ClientConnectorError(key, DestinationRefused("127.0.0.1 is loopback"))   # type: ignore[arg-type]
    assert refusal_of(one) == ("address", "127.0.0.1 is loopback")
    # a name with several addresses, each refused for its own reason: the connector joins the messages
    joined = OSError(13, "Multiple exceptions: [Errno 13] destination refused: 10.0.0.1 is private, "
                         "[Errno 13] destination refused: fd00::1 is unique-local")
    assert refusal_of(aiohttp.ClientConnectorError(key, joined)) == (   # type: ignore[arg-type]
        "address", "10.0.0.1 is private, fd00::1 is unique-local")
    assert refusal_of(aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))) is None
    assert refusal_of(TimeoutError()) is None
