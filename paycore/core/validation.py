"""Request validation: pure functions from parsed JSON to typed requests.

Every failure is ``InvalidRequest`` naming the field. Strings are checked for
length and control characters; amounts must be JSON integers (never floats or
booleans); unknown fields are refused so a typo cannot silently change
nothing.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

from channels import emv, money
from channels.base import Method, NfcData
from paycore import destinations
from paycore.errors import InvalidRequest

# re.ASCII: \d must not match other scripts' digits (they would reach a channel as a payment code);
# \Z, not $: "$" also matches before a trailing newline
ORDER_NO_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
AUTH_CODE_RE = re.compile(r"^\d{10,32}\Z", re.ASCII)
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
TOKEN_RE = re.compile(r"^\d{13,19}\Z", re.ASCII)
EXPIRY_RE = re.compile(r"^\d{4}\Z", re.ASCII)
CRYPTOGRAM_RE = re.compile(r"^[A-Za-z0-9+/=]{4,256}\Z")
HEX_RE = re.compile(r"^[0-9A-Fa-f]{2,4096}\Z")
# C0 controls, DEL, line/paragraph separators, and the bidi controls (U+200E/F, U+202A–E, U+2066–9)
# that make text display other than it reads ("Trojan Source")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_AMOUNT_ABSOLUTE = money.MAX_AMOUNT
MAX_METADATA_DEPTH = 32
CHANNELS = ("wechatpay", "alipay", "unionpay", "ecny", "jdpay", "bestpay", "qqwallet", "douyinpay",
            "applepay", "huaweipay", "samsungpay", "bankwallet")
NFC_WALLETS = ("applepay", "huaweipay", "samsungpay")

PAYMENT_FIELDS = frozenset({"merchant_order_no", "amount", "currency", "method", "channel", "auth_code", "nfc",
                            "payer", "subject", "store_id", "terminal_id", "notify_url", "expire_in", "metadata",
                            "profit_sharing"})
REFUND_FIELDS = frozenset({"refund_no", "amount", "reason"})


@dataclass(slots=True)
class CreatePayment:
    merchant_order_no: str
    amount: int
    currency: str
    method: Method
    channel: str | None
    auth_code: str | None
    nfc: NfcData | None
    payer: dict[str, str] | None
    subject: str | None
    store_id: str | None
    terminal_id: str | None
    notify_url: str | None
    expire_in: int | None
    metadata: dict[str, Any]
    fingerprint: str
    profit_sharing: bool = False
    #: not a field of the API: paycore's own pages (the one-code page) set it, for the
    #: provider's H5 cashier to send the customer back to (PayRequest.return_url)
    return_url: str | None = None


@dataclass(slots=True)
class CreateRefund:
    refund_no: str
    amount: int
    reason: str | None
    fingerprint: str


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("a JSON object body is required", field="body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("body is not valid JSON (UTF-8)", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object", field="body")
    return data


def _text(d: dict[str, Any], name: str, max_len: int, *, required: bool = False,
          pattern: re.Pattern[str] | None = None, within: str = "") -> str | None:
    v = d.get(name)
    name = within + name   # the field as the error names it: "nfc.token"
    if v is None:
        if required:
            raise InvalidRequest(f"{name} is required", field=name)
        return None
    if not isinstance(v, str):
        raise InvalidRequest(f"{name} must be a string", field=name)
    if not v or len(v) > max_len:
        raise InvalidRequest(f"{name} must be 1–{max_len} characters", field=name)
    if pattern is not None and not pattern.match(v):
        raise InvalidRequest(f"{name} has an invalid format", field=name)
    if _CTRL_RE.search(v):
        raise InvalidRequest(f"{name} contains control characters", field=name)
    return v


def _int(d: dict[str, Any], name: str, *, required: bool = False, lo: int = 1, hi: int = MAX_AMOUNT_ABSOLUTE) -> int | None:
    v = d.get(name)
    if v is None:
        if required:
            raise InvalidRequest(f"{name} is required", field=name)
        return None
    if type(v) is not int:
        raise InvalidRequest(f"{name} must be an integer", field=name)
    if not lo <= v <= hi:
        raise InvalidRequest(f"{name} must be between {lo} and {hi}", field=name)
    return v


def _unknown(d: dict[str, Any], allowed: frozenset[str]) -> None:
    for k in d:
        if k not in allowed:
            raise InvalidRequest(f"unknown field {k[:64]!r}", field=k[:64] or "body")


def _depth(v: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (the input may be 1024 levels deep)."""
    deepest, stack = 0, [(v, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict):
            x = list(x.values())
        if isinstance(x, list):
            deepest = max(deepest, d)
            stack.extend((y, d + 1) for y in x)
    return deepest


def _fingerprint(d: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(d, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _url(v: str | None, allow_http: bool, allow_private: bool) -> str | None:
    """The webhook URL's shape (paycore.destinations): what can be told now. The address it
    resolves to is checked again when each delivery connects."""
    if v is None:
        return None
    problem = destinations.url_problem(v, allow_http=allow_http, allow_private=allow_private)
    if problem:
        raise InvalidRequest(f"notify_url {problem}", field="notify_url")
    return v


def notify_url(v: str | None, *, allow_http: bool = False, allow_private: bool = False) -> str | None:
    """A notify_url as the API accepts it in a payment (1-512 characters; https and a public host
    unless the ``[webhooks]`` settings allow more), for the merchant's default endpoint set in the
    portal; None stays None (no default)."""
    return _url(_text({"notify_url": v}, "notify_url", 512), allow_http, allow_private)


def _nfc(v: Any) -> NfcData:
    if not isinstance(v, dict):
        raise InvalidRequest("nfc must be an object", field="nfc")
    _unknown_nfc = set(v) - {"token", "expiry", "cryptogram", "wallet", "emv_data"}
    if _unknown_nfc:
        raise InvalidRequest("unknown field in nfc", field="nfc." + sorted(_unknown_nfc)[0][:32])
    token = _text(v, "token", 19, required=True, pattern=TOKEN_RE, within="nfc.")
    expiry = _text(v, "expiry", 4, required=True, pattern=EXPIRY_RE, within="nfc.")
    crypt = _text(v, "cryptogram", 256, required=True, pattern=CRYPTOGRAM_RE, within="nfc.")
    wallet = _text(v, "wallet", 16, within="nfc.")
    if wallet is not None and wallet not in NFC_WALLETS:
        raise InvalidRequest(f"nfc.wallet must be one of {', '.join(NFC_WALLETS)}", field="nfc.wallet")
    chip = _text(v, "emv_data", 4096, pattern=HEX_RE, within="nfc.")
    assert token and expiry and crypt
    # what the card network would refuse as malformed is refused here, as the caller's error,
    # before it reaches the channel (where it used to count as a channel fault)
    if not emv.is_luhn(token):
        raise InvalidRequest("nfc.token is not a network token (check digit)", field="nfc.token")
    month = int(expiry[2:])
    if not 1 <= month <= 12:
        raise InvalidRequest("nfc.expiry must be YYMM", field="nfc.expiry")
    today = datetime.now(timezone.utc)
    if (2000 + int(expiry[:2]), month) < (today.year, today.month):
        raise InvalidRequest("nfc.expiry is in the past", field="nfc.expiry")
    if chip is not None:
        _chip_data(chip)
    return NfcData(token=token, expiry=expiry, cryptogram=crypt, wallet=wallet, emv_data=chip)


def _chip_data(chip: str) -> None:
    """``nfc.emv_data``: whole BER-TLV, holding the 8-byte application cryptogram (9F26)."""
    if len(chip) % 2:
        raise InvalidRequest("nfc.emv_data must be whole bytes of hex", field="nfc.emv_data")
    try:
        tags = dict(emv.tlv_parse(chip))
    except ValueError as e:
        raise InvalidRequest(f"nfc.emv_data is not EMV TLV ({e})", field="nfc.emv_data") from None
    if len(tags.get(emv.CRYPTOGRAM_TAG, b"")) != 8:
        raise InvalidRequest("nfc.emv_data must hold the 8-byte application cryptogram (tag 9F26)",
                             field="nfc.emv_data")


def create_payment(data: dict[str, Any], *, max_expire_in: int = 7 * 24 * 3600, allow_http: bool = False,
                   allow_private: bool = False) -> CreatePayment:
    """``allow_http``/``allow_private``: ``[webhooks]`` settings for ``notify_url`` (dev and tests only)."""
    _unknown(data, PAYMENT_FIELDS)
    order_no = _text(data, "merchant_order_no", 64, required=True, pattern=ORDER_NO_RE)
    amount = _int(data, "amount", required=True)
    currency = data.get("currency")
    if currency != "CNY":
        raise InvalidRequest("currency must be \"CNY\"", field="currency")
    raw_method = data.get("method")
    try:
        method = Method(raw_method) if isinstance(raw_method, str) else None
    except ValueError:
        method = None
    if method is None:
        raise InvalidRequest(f"method must be one of {', '.join(m.value for m in Method)}", field="method")
    channel = _text(data, "channel", 32)
    if channel is not None and channel not in CHANNELS:
        raise InvalidRequest("unknown channel", field="channel")
    auth_code = nfc = payer = None
    match method:
        case Method.BARCODE | Method.SONIC:
            auth_code = _text(data, "auth_code", 32, required=True, pattern=AUTH_CODE_RE)
        case Method.NFC:
            if "nfc" not in data:
                raise InvalidRequest("nfc is required for method nfc", field="nfc")
            nfc = _nfc(data["nfc"])
        case Method.JSAPI | Method.WALLET:
            p = data.get("payer")
            if not isinstance(p, dict) or not p:
                raise InvalidRequest("payer ({openid} or {user_id}) is required", field="payer")
            if set(p) - {"openid", "user_id"}:
                raise InvalidRequest("payer takes openid or user_id", field="payer")
            payer = {k: _text(p, k, 128, required=True, pattern=ID_RE, within="payer.")  # type: ignore[misc]
                     for k in p}
        case Method.QR | Method.H5 | Method.APP:
            pass
        case _:
            raise AssertionError(method)
    for name, allowed in (("auth_code", (Method.BARCODE, Method.SONIC)), ("nfc", (Method.NFC,)),
                          ("payer", (Method.JSAPI, Method.WALLET))):
        if name in data and method not in allowed:
            raise InvalidRequest(f"{name} is not used by method {method}", field=name)
    subject = _text(data, "subject", 128)
    store_id = _text(data, "store_id", 32)
    terminal_id = _text(data, "terminal_id", 32)
    notify_url = _url(_text(data, "notify_url", 512), allow_http, allow_private)
    expire_in = _int(data, "expire_in", lo=10, hi=max_expire_in)
    md = data.get("metadata", {})
    if not isinstance(md, dict):
        raise InvalidRequest("metadata must be an object", field="metadata")
    # orjson reads 1024 levels but writes only 254, and metadata is written again inside the
    # payment and its events: a depth limit well below keeps every later write safe
    if _depth(md) > MAX_METADATA_DEPTH:
        raise InvalidRequest(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels", field="metadata")
    if len(orjson.dumps(md)) > 4096:
        raise InvalidRequest("metadata must be at most 4 KiB", field="metadata")
    profit_sharing = data.get("profit_sharing", False)
    if not isinstance(profit_sharing, bool):
        raise InvalidRequest("profit_sharing must be true or false", field="profit_sharing")
    assert order_no is not None and amount is not None
    return CreatePayment(order_no, amount, "CNY", method, channel, auth_code, nfc, payer, subject, store_id,
                         terminal_id, notify_url, expire_in, md, _fingerprint(data), profit_sharing)


def create_refund(data: dict[str, Any]) -> CreateRefund:
    _unknown(data, REFUND_FIELDS)
    refund_no = _text(data, "refund_no", 64, required=True, pattern=ORDER_NO_RE)
    amount = _int(data, "amount", required=True)
    reason = _text(data, "reason", 256)
    assert refund_no is not None and amount is not None
    return CreateRefund(refund_no, amount, reason, _fingerprint(data))


# -- money after the payment: receivers, splits, payouts (api.md) ------------------------------

RECEIVER_FIELDS = frozenset({"receiver_no", "channel", "type", "account", "name"})
SPLIT_FIELDS = frozenset({"split_no", "receivers", "finish"})
SPLIT_LINE_FIELDS = frozenset({"receiver_id", "amount", "description"})
PAYOUT_FIELDS = frozenset({"payout_no", "amount", "currency", "channel", "destination", "remark", "notify_url"})
DESTINATION_FIELDS = frozenset({"type", "value", "name"})
RECEIVER_TYPES = ("merchant", "openid", "user_id", "account")
DESTINATION_TYPES = ("openid", "user_id", "account")
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_@.+-]{1,64}\Z")
MAX_SPLIT_RECEIVERS = 50


@dataclass(slots=True)
class CreateReceiver:
    receiver_no: str
    channel: str
    type: str
    account: str
    name: str | None
    fingerprint: str

    def __repr__(self) -> str:   # the name is a person's or a company's: never in a log line
        return f"CreateReceiver({self.receiver_no!r}, {self.channel!r}, {self.type!r})"


@dataclass(slots=True)
class SplitLineRequest:
    receiver_id: str
    amount: int
    description: str


@dataclass(slots=True)
class CreateSplit:
    split_no: str
    receivers: list[SplitLineRequest]
    finish: bool
    fingerprint: str


@dataclass(slots=True)
class CreatePayout:
    payout_no: str
    amount: int
    channel: str
    destination_type: str
    destination: str
    name: str | None
    remark: str | None
    notify_url: str | None
    fingerprint: str

    def __repr__(self) -> str:
        return f"CreatePayout({self.payout_no!r}, {self.amount}, {self.channel!r}, {self.destination_type!r})"


def _choice(d: dict[str, Any], name: str, options: tuple[str, ...], within: str = "") -> str:
    v = d.get(name)
    if v not in options:
        raise InvalidRequest(f"{within}{name} must be one of {', '.join(options)}", field=within + name)
    return v


def create_receiver(data: dict[str, Any]) -> CreateReceiver:
    _unknown(data, RECEIVER_FIELDS)
    no = _text(data, "receiver_no", 64, required=True, pattern=ORDER_NO_RE)
    channel = _text(data, "channel", 32, required=True)
    if channel not in CHANNELS:
        raise InvalidRequest("unknown channel", field="channel")
    rtype = _choice(data, "type", RECEIVER_TYPES)
    account = _text(data, "account", 64, required=True, pattern=ACCOUNT_RE)
    name = _text(data, "name", 64)
    assert no and channel and account
    return CreateReceiver(no, channel, rtype, account, name, _fingerprint(data))


def create_split(data: dict[str, Any]) -> CreateSplit:
    _unknown(data, SPLIT_FIELDS)
    no = _text(data, "split_no", 64, required=True, pattern=ORDER_NO_RE)
    finish = data.get("finish")
    if not isinstance(finish, bool):
        raise InvalidRequest("finish must be true or false", field="finish")
    raw = data.get("receivers")
    if not isinstance(raw, list) or len(raw) > MAX_SPLIT_RECEIVERS:
        raise InvalidRequest(f"receivers must be a list of at most {MAX_SPLIT_RECEIVERS}", field="receivers")
    if not raw and not finish:
        raise InvalidRequest("receivers may be empty only with finish: true (release the rest)",
                             field="receivers")
    lines: list[SplitLineRequest] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"receivers[{i}]."
        if not isinstance(item, dict):
            raise InvalidRequest("each receiver must be an object", field=f"receivers[{i}]")
        for k in item:
            if k not in SPLIT_LINE_FIELDS:
                raise InvalidRequest(f"unknown field {k[:64]!r}", field=where + k[:64])
        rid = _text(item, "receiver_id", 64, required=True, pattern=ID_RE, within=where)
        v = item.get("amount")
        if type(v) is not int or not 1 <= v <= MAX_AMOUNT_ABSOLUTE:
            raise InvalidRequest(f"{where}amount must be an integer between 1 and {MAX_AMOUNT_ABSOLUTE}",
                                 field=where + "amount")
        desc = _text(item, "description", 80, required=True, within=where)
        assert rid and desc
        if rid in seen:
            raise InvalidRequest("a receiver may appear once per split", field=where + "receiver_id")
        seen.add(rid)
        lines.append(SplitLineRequest(rid, v, desc))
    assert no is not None
    return CreateSplit(no, lines, finish, _fingerprint(data))


def create_payout(data: dict[str, Any], *, allow_http: bool = False,
                  allow_private: bool = False) -> CreatePayout:
    _unknown(data, PAYOUT_FIELDS)
    no = _text(data, "payout_no", 64, required=True, pattern=ORDER_NO_RE)
    amount = _int(data, "amount", required=True)
    if data.get("currency") != "CNY":
        raise InvalidRequest("currency must be \"CNY\"", field="currency")
    channel = _text(data, "channel", 32, required=True)
    if channel not in CHANNELS:
        raise InvalidRequest("unknown channel", field="channel")
    dest = data.get("destination")
    if not isinstance(dest, dict):
        raise InvalidRequest("destination must be an object", field="destination")
    for k in dest:
        if k not in DESTINATION_FIELDS:
            raise InvalidRequest(f"unknown field {k[:64]!r}", field="destination." + k[:64])
    dtype = _choice(dest, "type", DESTINATION_TYPES, within="destination.")
    value = _text(dest, "value", 64, required=True, pattern=ACCOUNT_RE, within="destination.")
    name = _text(dest, "name", 64, within="destination.")
    remark = _text(data, "remark", 32)
    notify_url = _url(_text(data, "notify_url", 512), allow_http, allow_private)
    assert no and amount and channel and value
    return CreatePayout(no, amount, channel, dtype, value, name, remark, notify_url,
                        _fingerprint(data))
