"""What the apps' OAuth servers have in common, for the payer id a jsapi order needs.

WeChat (``snsapi_base``), Alipay (``auth_base``) and Douyin (silent
``login_id``) all send the customer's app to an authorize page that comes back
at once to our ``redirect_uri`` with a one-time code and our ``state``; the
code is exchanged server-side, with a secret, for the payer's id. Each
provider's wire format is in its own package; here are the pure pieces they
share: building the authorize URL and reading a JSON answer.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from channels.base import ChannelError

#: a payer id as paycore stores it (validation.ID_RE accepts these)
PAYER_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}\Z")
#: a one-time code as the providers issue them (alphanumerics, some with - or _)
CODE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,256}\Z")


def authorize_url(base: str, params: list[tuple[str, str]], fragment: str = "") -> str:
    """``base?params#fragment``; the parameters keep the given order (WeChat matches the
    authorize link against its documented order) and ``redirect_uri`` is fully escaped."""
    query = urlencode(params, quote_via=lambda s, safe, enc, err: quote(s, safe=""))
    return f"{base}?{query}" + (f"#{fragment}" if fragment else "")


def code_from(callback: Mapping[str, str], name: str, channel: str) -> str:
    """The one-time code the provider put in the callback's query; a customer who refused
    (or a forged callback) has none: ChannelError ``denied``."""
    code = callback.get(name, "")
    if not CODE_RE.match(code):
        raise ChannelError(f"{channel} payer_auth: no usable {name} in the callback", retriable=False,
                           kind="denied")
    return code


def json_answer(status: int, body: bytes, channel: str) -> dict[str, Any]:
    """The JSON object an OAuth API answered; ChannelError for 5xx or anything unreadable
    (retriable: the code may still be good, the customer can try again)."""
    if status >= 500:
        raise ChannelError(f"{channel} payer_auth: HTTP {status}", retriable=True, kind="http_5xx")
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ChannelError(f"{channel} payer_auth: unreadable answer", retriable=True, kind="garbage") from e
    if not isinstance(data, dict):
        raise ChannelError(f"{channel} payer_auth: answer is not an object", retriable=True, kind="garbage")
    return data


def payer_id(value: Any, channel: str, what: str) -> str:
    """A payer id from the provider's answer, checked to be one paycore can store."""
    if not isinstance(value, str) or not PAYER_ID_RE.match(value):
        raise ChannelError(f"{channel} payer_auth: answer without a usable {what}", retriable=True, kind="garbage")
    return value


def refused(channel: str, code: Any, message: Any) -> ChannelError:
    """The provider refused the code (used, expired, wrong app or secret): not retriable."""
    return ChannelError(f"{channel} payer_auth: refused ({str(code)[:32]} {str(message or '')[:80]})".strip(),
                        retriable=False, kind="rejected")
