"""A merchant's default webhook endpoint is checked exactly as a payment's notify_url
(paycore.core.validation.notify_url, used by the portal)."""
from __future__ import annotations

import pytest

from paycore.core import validation
from paycore.errors import InvalidRequest


def test_urls_are_kept_as_given_where_the_settings_allow_them():
    assert validation.notify_url("https://shop.example/hooks/paycore") == "https://shop.example/hooks/paycore"
    # plain http to a private address: only where [webhooks] allows it (dev, tests), as for a payment
    url = "http://10.0.0.7:8080/n?x=1"
    assert validation.notify_url(url, allow_http=True, allow_private=True) == url
    with pytest.raises(InvalidRequest) as e:
        validation.notify_url(url)
    assert e.value.field == "notify_url"


@pytest.mark.parametrize("url", ["ftp://shop.example/h", "shop.example/h", "https://", "http://[", "x" * 513,
                                 "https://a.example/" + "p" * 500])
def test_what_the_api_refuses_as_notify_url_is_refused(url):
    with pytest.raises(InvalidRequest) as e:
        validation.notify_url(url)
    assert e.value.field == "notify_url"
    with pytest.raises(InvalidRequest) as api:   # the same answer the API gives for a payment's notify_url
        validation.create_payment({"merchant_order_no": "o1", "amount": 100, "currency": "CNY", "method": "qr",
                                   "notify_url": url})
    assert (api.value.field, api.value.message) == (e.value.field, e.value.message)


def test_none_means_no_default():
    assert validation.notify_url(None) is None
