"""Pure mappings between paycore's channel types and Alipay OpenAPI v2 (gateway.do).

No I/O here: the adapter and the simulator both build and read the wire format
through these functions, so the two sides cannot drift apart, and every rule
is unit-tested alone (tests/unit/test_alipay_transformers.py).

Wire format in one paragraph: every call is a form of common parameters
(``app_id, method, charset, sign_type=RSA2, timestamp, version=1.0,
biz_content, notify_url, sign``) where ``biz_content`` is the JSON of the
method's own fields. The signature is SHA256withRSA (PKCS#1 v1.5), base64,
over the parameters except ``sign`` sorted by key as ``k=v`` joined by ``&``
with empty values dropped. The answer is ``{"<method>_response": {...},
"sign": "..."}`` signed over the *raw text* of the ``<method>_response``
member exactly as it stands in the bytes. Notifications are form posts signed
over every parameter except ``sign`` and ``sign_type``.

Alipay allows ``[A-Za-z0-9_]`` in ``out_trade_no`` / ``out_request_no`` (64
chars), so paycore's ``pay_…`` / ``rfd_…`` ids travel unchanged: there is no
id mapping for this channel, only :data:`OUT_NO_RE`, which the simulator
enforces as Alipay does.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels import money, oauth
from channels.base import (
    ChannelError,
    ChannelResult,
    Method,
    Notification,
    RefundResult,
    RefundStatus,
    StatementLine,
    TradeStatus,
    refused_by_provider,
)
from channels.money import fen_to_yuan

# -- API names and constants ----------------------------------------------------

PAY = "alipay.trade.pay"
PRECREATE = "alipay.trade.precreate"
CREATE = "alipay.trade.create"
WAP_PAY = "alipay.trade.wap.pay"
APP_PAY = "alipay.trade.app.pay"
QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
CANCEL = "alipay.trade.cancel"
CLOSE = "alipay.trade.close"
BILL_URL = "alipay.data.dataservice.bill.downloadurl.query"
OAUTH_TOKEN = "alipay.system.oauth.token"
#: the web authorisation page (网页授权); auth_base is silent and yields the user id only
OAUTH_AUTHORIZE_URL = "https://openauth.alipay.com/oauth2/publicAppAuthorize.htm"

#: the API each pay method calls (wap/app are signed here and sent by the client)
PAY_API: dict[Method, str] = {
    Method.BARCODE: PAY, Method.QR: PRECREATE, Method.JSAPI: CREATE,
    Method.H5: WAP_PAY, Method.APP: APP_PAY,
}
#: methods whose order Alipay only creates when the buyer scans / opens it
CLIENT_CREATED: frozenset[Method] = frozenset({Method.QR, Method.H5, Method.APP})

PRODUCT_CODE: dict[str, str] = {
    PAY: "FACE_TO_FACE_PAYMENT", PRECREATE: "FACE_TO_FACE_PAYMENT", CREATE: "JSAPI_PAY",
    WAP_PAY: "QUICK_WAP_WAY", APP_PAY: "QUICK_MSECURITY_PAY",
}

GATEWAY_PATH = "/gateway.do"
CHARSET = "utf-8"
SIGN_TYPE = "RSA2"
VERSION = "1.0"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=utf-8"

CODE_SUCCESS = "10000"
CODE_PAYING = "10003"          # waiting for the buyer (password on the phone)
CODE_UNKNOWN = "20000"         # service unavailable, outcome unknown: query
CODE_BUSINESS = "40004"        # business failure, sub_code says which
#: gateway-level refusals (missing/invalid parameters, no permission): nothing happened.
#: Alipay answers these before its business layer and may leave them unsigned.
GATEWAY_REFUSALS = frozenset({"40001", "40002", "40006"})

SYSTEM_ERROR = "ACQ.SYSTEM_ERROR"
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
TRADE_HAS_SUCCESS = "ACQ.TRADE_HAS_SUCCESS"
BILL_NOT_EXIST = "isp.bill_not_exist"
REFUND_NOT_EXIST = "REFUND_NOT_EXIST"  # ours: fastpay.refund.query found no such refund

OUT_NO_RE = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")

#: Alipay's times are Beijing wall-clock "yyyy-MM-dd HH:mm:ss"
CST = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def response_key(api_method: str) -> str:
    return api_method.replace(".", "_") + "_response"


def beijing_time(dt: datetime) -> str:
    return dt.astimezone(CST).strftime(TIME_FORMAT)


def parse_beijing_time(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.strptime(s, TIME_FORMAT).replace(tzinfo=CST)
    except ValueError:
        return None


# -- money ------------------------------------------------------------------------

def yuan_to_fen(s: str, *, allow_negative: bool = False) -> int:
    """``"12.34"`` / ``"12.3"`` / ``"12"`` → fen, blanks around and zeros in front
    tolerated; anything else (``1e3``, three decimals, blanks inside) is a
    ValueError. Refund rows of the statement carry negative amounts, hence
    ``allow_negative``. ``fen_to_yuan`` is :func:`channels.money.fen_to_yuan`."""
    return money.yuan_to_fen(s, allow_negative=allow_negative, padded=True)


# -- keys and signatures ------------------------------------------------------------

def _pem(text: str, kind: str) -> bytes:
    """Alipay's console hands out keys as bare base64 (no PEM armour): accept both."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    body = "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(_pem(text, "PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Alipay RSA2 needs an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(_pem(text, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Alipay RSA2 needs an RSA public key")
    return key


def rsa2_sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def request_sign_content(params: Mapping[str, str | None]) -> str:
    """The string a request is signed over: all but ``sign``, sorted, empties dropped."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, ""))


def notify_sign_content(params: Mapping[str, str]) -> str:
    """The string a notification is verified over: all but ``sign`` and ``sign_type``,
    sorted. Empty values are kept, as Alipay's own SDKs (``getSignCheckContentV1``) do."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))


# -- requests ----------------------------------------------------------------------

def biz_json(biz: Mapping[str, Any]) -> str:
    return json.dumps(biz, separators=(",", ":"), ensure_ascii=False)


def common_params(*, app_id: str, api_method: str, biz: Mapping[str, Any] | None, timestamp: datetime,
                  notify_url: str | None = None, app_auth_token: str | None = None,
                  extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The unsigned form of one call; :func:`sign_params` adds ``sign``. ``biz=None``: a call
    whose parameters are plain form fields (``alipay.system.oauth.token``), no biz_content."""
    params = {
        "app_id": app_id, "method": api_method, "charset": CHARSET, "sign_type": SIGN_TYPE,
        "timestamp": beijing_time(timestamp), "version": VERSION,
    }
    if biz is not None:
        params["biz_content"] = biz_json(biz)
    if notify_url:
        params["notify_url"] = notify_url
    if app_auth_token:
        params["app_auth_token"] = app_auth_token
    params.update({k: v for k, v in (extra or {}).items() if v})
    return params


def sign_params(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    signed = dict(params)
    signed["sign"] = rsa2_sign(key, request_sign_content(signed))
    return signed


def order_string(signed: Mapping[str, str]) -> str:
    """The signed order the Alipay client SDK takes (app) or the query of the wap URL:
    url-encoded ``k=v`` pairs, sorted, ``sign`` last."""
    items = [(k, signed[k]) for k in sorted(signed) if k != "sign" and signed[k]]
    return urlencode(items + [("sign", signed["sign"])])


@dataclass(frozen=True, slots=True)
class PayBiz:
    """What a pay call sends: the API, its biz_content, and whether it needs notify_url."""

    api_method: str
    biz: dict[str, Any]


def pay_biz(*, method: Method, out_trade_no: str, amount: int, subject: str, expire_at: datetime,
            auth_code: str | None = None, payer: Mapping[str, str] | None = None,
            sub_merchant_id: str | None = None, store_id: str | None = None,
            terminal_id: str | None = None, quit_url: str | None = None, royalty_freeze: bool = False) -> PayBiz:
    """biz_content of the pay call for ``method``.

    ``royalty_freeze`` holds the funds for profit sharing (交易分账: ``extend_params.royalty_freeze``).

    ``sub_merchant_id`` is the ISV sub-merchant (``sub_merchant.merchant_id``);
    the app_auth_token variant of ISV mode is a common parameter, not biz.
    """
    if method not in PAY_API:
        raise ValueError(f"alipay does not support {method}")
    api = PAY_API[method]
    biz: dict[str, Any] = {
        "out_trade_no": out_trade_no, "total_amount": fen_to_yuan(amount), "subject": subject,
        "product_code": PRODUCT_CODE[api],
    }
    match method:
        case Method.BARCODE:
            if not auth_code:
                raise ValueError("barcode payment without auth_code")
            biz.update(scene="bar_code", auth_code=auth_code)
        case Method.JSAPI:
            payer = payer or {}
            if payer.get("user_id"):
                biz["buyer_id"] = payer["user_id"]
            elif payer.get("open_id"):
                biz["buyer_open_id"] = payer["open_id"]
            else:
                raise ValueError("jsapi payment needs payer.user_id (or open_id)")
        case Method.H5:
            if quit_url:
                biz["quit_url"] = quit_url
        case _:
            pass
    if method is not Method.BARCODE:
        # an order the buyer may open later must die when paycore gives up on it
        biz["time_expire"] = beijing_time(expire_at)
    if sub_merchant_id:
        biz["sub_merchant"] = {"merchant_id": sub_merchant_id}
    if store_id:
        biz["store_id"] = store_id
    if terminal_id:
        biz["terminal_id"] = terminal_id
    if royalty_freeze:
        biz["extend_params"] = {"royalty_freeze": "true"}
    return PayBiz(api, biz)


def trade_biz(out_trade_no: str, channel_trade_no: str | None = None) -> dict[str, str]:
    """biz_content of query / cancel / close."""
    biz = {"out_trade_no": out_trade_no}
    if channel_trade_no:
        biz["trade_no"] = channel_trade_no
    return biz


def refund_biz(*, out_trade_no: str, channel_trade_no: str | None, out_refund_no: str,
               refund_amount: int, reason: str | None) -> dict[str, str]:
    biz = trade_biz(out_trade_no, channel_trade_no)
    biz.update(out_request_no=out_refund_no, refund_amount=fen_to_yuan(refund_amount))
    if reason:
        biz["refund_reason"] = reason
    return biz


def refund_query_biz(*, out_trade_no: str, channel_trade_no: str | None, out_refund_no: str) -> dict[str, Any]:
    biz: dict[str, Any] = trade_biz(out_trade_no, channel_trade_no)
    biz.update(out_request_no=out_refund_no, query_options=["gmt_refund_pay"])
    return biz


def bill_biz(day: date) -> dict[str, str]:
    return {"bill_type": "trade", "bill_date": day.isoformat()}


# -- synchronous answers ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SignedAnswer:
    """One gateway answer: the response member as parsed, its raw text and the sign."""

    key: str                  # "<method>_response" or "error_response"
    raw: str                  # the member's JSON text exactly as in the bytes
    body: dict[str, Any]
    sign: str | None


_WS = " \t\n\r"
_decoder = json.JSONDecoder()


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def top_level_members(text: str) -> dict[str, tuple[str, Any]]:
    """``{key: (raw value text, value)}`` of a JSON object, the raw text sliced from
    the input exactly (spacing, escapes and member order untouched).

    Walks the top level with the stdlib decoder's ``raw_decode`` for each key and
    value, so strings holding braces or quotes cannot fool it.
    """
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "{":
        raise ValueError("answer is not a JSON object")
    i = _skip_ws(text, i + 1)
    members: dict[str, tuple[str, Any]] = {}
    if i < len(text) and text[i] == "}":
        return members
    while True:
        key, i = _decoder.raw_decode(text, i)
        if not isinstance(key, str):
            raise ValueError("object key is not a string")
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] != ":":
            raise ValueError("expected ':'")
        start = _skip_ws(text, i + 1)
        value, end = _decoder.raw_decode(text, start)
        members[key] = (text[start:end], value)
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            if _skip_ws(text, i + 1) != len(text):
                raise ValueError("trailing data after the answer")
            return members
        raise ValueError("expected ',' or '}'")


def open_answer(text: str, api_method: str) -> SignedAnswer:
    """Find ``<method>_response`` (or Alipay's ``error_response``) and ``sign``.
    ValueError when the text is not such an answer."""
    members = top_level_members(text)
    for key in (response_key(api_method), "error_response"):
        if key in members:
            raw, body = members[key]
            if not isinstance(body, dict):
                raise ValueError(f"{key} is not an object")
            sign = members.get("sign", (None, None))[1]
            if sign is not None and not isinstance(sign, str):
                raise ValueError("sign is not a string")
            return SignedAnswer(key, raw, body, sign or None)
    raise ValueError(f"no {response_key(api_method)} in the answer")


def render_answer(key: str, body: Mapping[str, Any], sign_fn: Any | None, *, style: int = 0) -> str:
    """The gateway's answer text (used by the simulator). ``style`` varies the
    spacing, member order and escaping — all valid JSON — so a client that
    re-serialises instead of verifying the raw member text fails:
    0 compact, UTF-8; 1 spaced with ``sign`` first; 2 indented, ASCII escapes and ``\\/``."""
    if style == 1:
        raw = json.dumps(body, ensure_ascii=False, separators=(", ", " : "))
    elif style == 2:
        raw = json.dumps(body, ensure_ascii=True, indent=1).replace("/", "\\/")
    else:
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    k = json.dumps(key)
    if sign_fn is None:
        return f"{{{k}:{raw}}}"
    s = json.dumps(sign_fn(raw))
    if style == 1:
        return f'{{ "sign" : {s},  {k} : {raw} }}'
    return f'{{{k}:{raw},"sign":{s}}}'


def oauth_authorize_url(base: str, app_id: str, redirect_uri: str, state: str) -> str:
    """The silent ``auth_base`` link; Alipay comes back with ``auth_code`` (and ``app_id``,
    ``source``, ``scope``, ``state``)."""
    return oauth.authorize_url(base, [("app_id", app_id), ("scope", "auth_base"), ("redirect_uri", redirect_uri),
                                      ("state", state)])


def oauth_token_fields(auth_code: str) -> dict[str, str]:
    """``alipay.system.oauth.token``'s own parameters (form fields beside the common ones)."""
    return {"grant_type": "authorization_code", "code": auth_code}


def oauth_payer(key: str, body: Mapping[str, Any], *, signed: bool) -> dict[str, str]:
    """The token answer → ``{"user_id"}`` (the 2088… id trade.create takes as buyer_id).
    Success carries ``user_id``, ``access_token`` … and no ``code``; a refusal comes as
    ``error_response`` (40002 isv.code-invalid: the code is spent or expired)."""
    if key == "error_response" or body.get("code") not in (None, CODE_SUCCESS):
        raise oauth.refused("alipay", body.get("sub_code") or body.get("code"), body.get("sub_msg"))
    if not signed:
        raise ChannelError("alipay payer_auth: unsigned answer", retriable=True, kind="bad_signature")
    return {"user_id": oauth.payer_id(body.get("user_id"), "alipay", "user_id")}


def gateway_check(body: Mapping[str, Any], *, signed: bool) -> str:
    """Raise the ChannelError a gateway-level answer means; return the code otherwise.

    20000 and ACQ.SYSTEM_ERROR: outcome unknown, query (retriable system_error).
    40001/40002/40006: the gateway refused the call (bad signature, parameters,
    permission); nothing happened, repeating will not help (not retriable).
    A parameter or permission refusal is the caller's error (``caller=True``);
    one about our signature or app id is a channel fault.
    An unsigned answer is accepted only for those; anything else unsigned is
    treated as a forgery (bad_signature).
    """
    code = str(body.get("code", ""))
    sub = str(body.get("sub_code", ""))
    what = f"alipay {code} {sub} {body.get('sub_msg') or body.get('msg') or ''}".strip()
    if code == CODE_UNKNOWN or sub == SYSTEM_ERROR:
        raise ChannelError(what, retriable=True, kind="system_error")
    if code in GATEWAY_REFUSALS:
        if "sign" in sub or "app-id" in sub or "app_id" in sub:   # our key or app id: a channel fault
            raise ChannelError(what, retriable=False, kind="rejected")
        raise refused_by_provider(what)   # missing/invalid parameter, not permitted: the caller's request
    if not signed:
        raise ChannelError(f"alipay: unsigned answer with code {code!r}", retriable=True, kind="bad_signature")
    if code not in (CODE_SUCCESS, CODE_PAYING, CODE_BUSINESS):
        raise ChannelError(f"alipay: unexpected code {code!r}", retriable=True, kind="garbage")
    return code


def _amount(body: Mapping[str, Any], field: str) -> int | None:
    v = body.get(field)
    if v in (None, ""):
        return None
    try:
        return yuan_to_fen(str(v))
    except ValueError as e:
        raise ChannelError(f"alipay: bad {field} {v!r}", retriable=True, kind="garbage") from e


def _declined(body: Mapping[str, Any], status: TradeStatus = TradeStatus.FAILED) -> ChannelResult:
    return ChannelResult(status=status, channel_trade_no=body.get("trade_no") or None,
                         failure_code=str(body.get("sub_code") or body.get("code")),
                         failure_message=body.get("sub_msg") or body.get("msg"))


def trade_status(alipay_status: str, method: Method | None, *, paid: bool) -> TradeStatus:
    """``trade_status`` → TradeStatus.

    WAIT_BUYER_PAY is PROCESSING for a barcode (the buyer is confirming on the
    phone) and PENDING for an order waiting to be scanned/opened. TRADE_CLOSED
    covers both "closed unpaid" and "paid, then fully refunded": ``paid`` (the
    answer carries a payment time) tells them apart, the latter is SUCCEEDED
    (the money was taken; the refunds are tracked on their own).
    """
    match alipay_status:
        case "WAIT_BUYER_PAY":
            return TradeStatus.PROCESSING if method is Method.BARCODE else TradeStatus.PENDING
        case "TRADE_SUCCESS" | "TRADE_FINISHED":
            return TradeStatus.SUCCEEDED
        case "TRADE_CLOSED":
            return TradeStatus.SUCCEEDED if paid else TradeStatus.CLOSED
        case _:
            raise ValueError(f"unknown trade_status {alipay_status!r}")


def pay_result(code: str, body: Mapping[str, Any], method: Method) -> ChannelResult:
    """Answer of trade.pay / precreate / create (after :func:`gateway_check`)."""
    trade_no = body.get("trade_no") or None
    if code == CODE_BUSINESS:
        if body.get("sub_code") == TRADE_HAS_SUCCESS:   # this out_trade_no is already paid
            return ChannelResult(status=TradeStatus.SUCCEEDED, channel_trade_no=trade_no)
        return _declined(body)
    if method is not Method.BARCODE:
        if code != CODE_SUCCESS:
            raise ChannelError(f"alipay: code {code} for an order", retriable=True, kind="garbage")
        if method is Method.QR:
            qr = body.get("qr_code")
            if not qr:
                raise ChannelError("alipay: precreate without qr_code", retriable=True, kind="garbage")
            return ChannelResult(status=TradeStatus.PENDING, channel_trade_no=trade_no, qr_code=qr)
        if not trade_no:
            raise ChannelError("alipay: trade.create without trade_no", retriable=True, kind="garbage")
        # JSAPI: the mini-program / H5 calls my.tradePay({tradeNO}) with it
        return ChannelResult(status=TradeStatus.PENDING, channel_trade_no=trade_no,
                             pay_params={"trade_no": trade_no})
    if code == CODE_PAYING:
        return ChannelResult(status=TradeStatus.PROCESSING, channel_trade_no=trade_no)
    return ChannelResult(status=TradeStatus.SUCCEEDED, channel_trade_no=trade_no,
                         amount=_amount(body, "total_amount"),
                         paid_at=parse_beijing_time(body.get("gmt_payment")))


def query_result(code: str, body: Mapping[str, Any], method: Method) -> ChannelResult:
    """Answer of trade.query. TRADE_NOT_EXIST is NOT_FOUND, except for methods whose
    trade Alipay creates only when the buyer scans / opens it: those are PENDING."""
    if code == CODE_BUSINESS:
        if body.get("sub_code") == TRADE_NOT_EXIST:
            status = TradeStatus.PENDING if method in CLIENT_CREATED else TradeStatus.NOT_FOUND
            return _declined(body, status)
        raise ChannelError(f"alipay query refused: {body.get('sub_code')}", retriable=True, kind="system_error")
    paid_at = parse_beijing_time(body.get("send_pay_date"))
    try:
        status = trade_status(str(body.get("trade_status", "")), method, paid=paid_at is not None)
    except ValueError as e:
        raise ChannelError(f"alipay: {e}", retriable=True, kind="garbage") from e
    return ChannelResult(status=status, channel_trade_no=body.get("trade_no") or None,
                         amount=_amount(body, "total_amount"), paid_at=paid_at)


def cancel_result(body: Mapping[str, Any], *, signed: bool) -> ChannelResult | None:
    """Answer of trade.cancel. ``retry_flag=Y`` (whatever the code): call again.
    Success (action close or refund) is REVERSED; TRADE_NOT_EXIST is NOT_FOUND.
    None: Alipay refused the cancel (e.g. too late): the adapter queries."""
    trade_no = body.get("trade_no") or None
    if body.get("retry_flag") == "Y":
        return ChannelResult(status=TradeStatus.PROCESSING, channel_trade_no=trade_no, retry=True,
                             failure_code=body.get("sub_code") or None, failure_message=body.get("sub_msg"))
    code = gateway_check(body, signed=signed)
    if code == CODE_SUCCESS:
        return ChannelResult(status=TradeStatus.REVERSED, channel_trade_no=trade_no)
    if body.get("sub_code") == TRADE_NOT_EXIST:
        return _declined(body, TradeStatus.NOT_FOUND)
    return None


def close_result(code: str, body: Mapping[str, Any]) -> ChannelResult | None:
    """Answer of trade.close. None: refused (TRADE_STATUS_ERROR: paid): query for the real state.
    TRADE_NOT_EXIST is NOT_FOUND, not CLOSED: a precreated QR exists at Alipay only once it is
    scanned, and trade.close of it does not stop a later scan from paying it."""
    if code == CODE_SUCCESS:
        return ChannelResult(status=TradeStatus.CLOSED, channel_trade_no=body.get("trade_no") or None)
    if body.get("sub_code") == TRADE_NOT_EXIST:
        return _declined(body, TradeStatus.NOT_FOUND)
    return None


def refund_result(code: str, body: Mapping[str, Any]) -> RefundResult | None:
    """Answer of trade.refund: synchronous. ``fund_change=Y``: refunded now. None for
    ``fund_change=N`` (a repeat of a done refund, or not done): ask fastpay.refund.query."""
    if code == CODE_BUSINESS:
        return RefundResult(status=RefundStatus.FAILED, failure_code=str(body.get("sub_code") or code),
                            failure_message=body.get("sub_msg") or body.get("msg"))
    if code != CODE_SUCCESS:
        raise ChannelError(f"alipay: refund code {code}", retriable=True, kind="garbage")
    if body.get("fund_change") == "Y":
        return RefundResult(status=RefundStatus.SUCCEEDED)
    return None


def refund_query_result(code: str, body: Mapping[str, Any]) -> RefundResult:
    """Answer of fastpay.refund.query: refund data present with ``refund_status``
    empty or REFUND_SUCCESS is a done refund; no data means it was not made
    (Alipay: re-send the refund with the same out_request_no)."""
    if code == CODE_BUSINESS:
        return RefundResult(status=RefundStatus.FAILED, failure_code=str(body.get("sub_code") or code),
                            failure_message=body.get("sub_msg") or body.get("msg"))
    if not body.get("refund_amount"):
        # not proof: a refund still being made is not visible yet (Alipay: re-send the same out_request_no)
        return RefundResult(status=RefundStatus.NOT_FOUND, failure_code=REFUND_NOT_EXIST,
                            failure_message="no such refund at Alipay (yet)")
    if body.get("refund_status") in (None, "", "REFUND_SUCCESS"):
        return RefundResult(status=RefundStatus.SUCCEEDED)
    return RefundResult(status=RefundStatus.PROCESSING)


# -- notifications -------------------------------------------------------------------

def notification_from_form(params: Mapping[str, str]) -> Notification:
    """A verified notification's fields → Notification (ValueError when malformed).

    Alipay posts payment and refund changes alike as ``trade_status_sync`` to the
    payment's notify_url; a refund carries ``out_biz_no`` (the refund's
    out_request_no) and ``refund_fee`` (refunded so far). ``merchant_ref`` is
    the ``app_id`` (what paycore configures per channel); ``amount`` is the
    trade's ``total_amount`` for both kinds.
    """
    out_trade_no = params.get("out_trade_no", "")
    status_word = params.get("trade_status", "")
    if not out_trade_no or not status_word or not params.get("app_id"):
        raise ValueError("notification lacks out_trade_no, trade_status or app_id")
    amount = yuan_to_fen(params["total_amount"]) if params.get("total_amount") else None
    trade_no = params.get("trade_no") or None
    if params.get("out_biz_no") and (params.get("refund_fee") or params.get("gmt_refund")):
        yuan_to_fen(params.get("refund_fee") or "0")  # malformed money is malformed, even unused
        return Notification(kind="refund", out_trade_no=out_trade_no, merchant_ref=params["app_id"],
                            amount=amount, out_refund_no=params["out_biz_no"],
                            refund=RefundResult(status=RefundStatus.SUCCEEDED),
                            notification_id=params.get("notify_id"))
    paid_at = parse_beijing_time(params.get("gmt_payment"))
    status = trade_status(status_word, None, paid=paid_at is not None)
    payment = ChannelResult(status=status, channel_trade_no=trade_no, amount=amount, paid_at=paid_at)
    return Notification(kind="payment", out_trade_no=out_trade_no, merchant_ref=params["app_id"],
                        amount=amount, payment=payment, notification_id=params.get("notify_id"))


NOTIFY_ACK_OK = b"success"
NOTIFY_ACK_FAIL = b"failure"


# -- the daily statement (trade bill) ------------------------------------------------------

#: columns of Alipay's 业务明细 (trade detail) file, in order
BILL_COLUMNS: tuple[str, ...] = (
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
    "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
    "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
    "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注",
)
BILL_ENCODING = "gbk"
BILL_DETAIL_SUFFIX = "_业务明细.csv"
BILL_SUMMARY_SUFFIX = "_业务明细(汇总).csv"
KIND_PAYMENT = "交易"
KIND_REFUND = "退款"


@dataclass(frozen=True, slots=True)
class BillRow:
    kind: str                     # KIND_PAYMENT | KIND_REFUND
    trade_no: str
    out_trade_no: str
    subject: str
    created: datetime
    finished: datetime
    order_amount: int             # fen, the trade's amount
    received: int                 # fen, the merchant's receipt (negative for a refund)
    out_request_no: str = ""      # refunds: the refund's out_request_no ("" for a cancel's refund)
    store_id: str = ""
    terminal_id: str = ""


def bill_files(account: str, day: date, rows: Iterable[BillRow], exported_at: datetime) -> bytes:
    """The ``<account>_<yyyymmdd>.csv.zip`` Alipay serves: a zip of the detail and
    the summary CSV, GBK, ``#`` comment lines around the table, ids followed by a
    tab (Alipay's guard against spreadsheets eating digits)."""
    rows = list(rows)
    ymd = day.strftime("%Y%m%d")
    start = datetime(day.year, day.month, day.day)
    fmt = "%Y年%m月%d日 %H:%M:%S"
    buf = io.StringIO()
    buf.write("#支付宝业务明细查询\n")
    buf.write(f"#账号：[{account}]\n")
    buf.write(f"#起始日期：[{start.strftime(fmt)}]   终止日期：[{(start + timedelta(days=1)).strftime(fmt)}]\n")
    buf.write("#-----------------------------------------业务明细列表----------------------------------------\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BILL_COLUMNS)
    for r in rows:
        received = fen_to_yuan(abs(r.received))
        w.writerow([
            r.trade_no + "\t", r.out_trade_no + "\t", r.kind, r.subject, r.created.strftime(TIME_FORMAT),
            r.finished.strftime(TIME_FORMAT), r.store_id, "", "", r.terminal_id, "", fen_to_yuan(r.order_amount),
            ("-" if r.received < 0 else "") + received, "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00",
            "0.00", (r.out_request_no + "\t") if r.out_request_no else "", "0.00", "0.00", "",
        ])
    buf.write("#-----------------------------------------业务明细列表结束------------------------------------\n")
    pays = [r for r in rows if r.kind == KIND_PAYMENT]
    refunds = [r for r in rows if r.kind == KIND_REFUND]
    pay_sum, refund_sum = sum(r.received for r in pays), sum(r.received for r in refunds)
    buf.write(f"#交易合计：{len(pays)}笔，商家实收：{fen_to_yuan(pay_sum)}元，商家优惠：0.00元\n")
    buf.write(f"#退款合计：{len(refunds)}笔，商家实收：-{fen_to_yuan(-refund_sum)}元，商家优惠：0.00元\n")
    buf.write(f"#导出时间：[{exported_at.astimezone(CST).strftime(fmt)}]\n")
    summary = io.StringIO()
    sw = csv.writer(summary, lineterminator="\n")
    summary.write("#支付宝业务汇总查询\n")
    sw.writerow(["门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）"])
    sw.writerow(["", "", len(pays), len(refunds), fen_to_yuan(sum(r.order_amount for r in pays)),
                 ("-" if pay_sum + refund_sum < 0 else "") + fen_to_yuan(abs(pay_sum + refund_sum))])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{account}_{ymd}{BILL_DETAIL_SUFFIX}", buf.getvalue().encode(BILL_ENCODING))
        z.writestr(f"{account}_{ymd}{BILL_SUMMARY_SUFFIX}", summary.getvalue().encode(BILL_ENCODING))
    return out.getvalue()


def bill_detail_text(zip_bytes: bytes) -> str:
    """The detail CSV (not the summary) out of the downloaded zip, decoded."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        names = [n for n in z.namelist() if n.endswith(BILL_DETAIL_SUFFIX)]
        if len(names) != 1:
            raise ValueError(f"expected one *{BILL_DETAIL_SUFFIX} in the bill zip, found {z.namelist()}")
        return z.read(names[0]).decode(BILL_ENCODING)


def parse_bill(text: str) -> list[StatementLine]:
    """Rows of the detail CSV → StatementLines. Payments carry the order amount;
    refunds the absolute merchant receipt (negative in the file). A refund row
    without an out_request_no is the refund made by a cancel (撤销): REVERSED."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in ("支付宝交易号", "商户订单号", "业务类型", "订单金额（元）", "商家实收（元）",
                           "退款批次号/请求号") if c not in header]
    if missing:
        raise ValueError(f"bill header lacks {missing}")
    col = {name: header.index(name) for name in header}
    out: list[StatementLine] = []
    for row in reader:
        cell = {name: row[i].strip() if i < len(row) else "" for name, i in col.items()}
        kind = cell["业务类型"]
        if kind == KIND_PAYMENT:
            out.append(StatementLine(kind="payment", out_trade_no=cell["商户订单号"],
                                     channel_trade_no=cell["支付宝交易号"] or None,
                                     amount=yuan_to_fen(cell["订单金额（元）"]), status="SUCCEEDED"))
        elif kind == KIND_REFUND:
            refund_no = cell["退款批次号/请求号"] or None
            out.append(StatementLine(kind="refund", out_trade_no=cell["商户订单号"],
                                     channel_trade_no=cell["支付宝交易号"] or None,
                                     amount=abs(yuan_to_fen(cell["商家实收（元）"], allow_negative=True)),
                                     status="REFUNDED" if refund_no else "REVERSED", out_refund_no=refund_no))
        else:
            raise ValueError(f"unknown 业务类型 {kind!r}")
    return out
