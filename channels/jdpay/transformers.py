"""JD Pay (京东支付, paygate.jd.com) wire format: pure mappings, no I/O.

Every request and answer is one XML envelope::

    <jdpay><version>V2.0</version><merchant>…</merchant><encrypt>…</encrypt></jdpay>

(answers and notifications also carry ``<result><code/><desc/></result>``
outside the encryption). ``encrypt`` is built as JD's SDK does it:

1. the business XML ``<?xml version="1.0" encoding="UTF-8"?><jdpay>…</jdpay>``
   is normalised the JD way (tabs/CR/LF removed, every remaining piece
   trimmed of characters <= U+0020, like Java's ``String.trim``);
2. ``sign`` = Base64(RSA private-key *encryption* with PKCS#1 v1.5 type-1
   padding of the UTF-8 lower-case hex SHA-256 of that XML without its
   ``<sign>`` element). This is not a standard signature: there is no
   DigestInfo. ``cryptography`` produces exactly these bytes with
   ``private_key.sign(data, PKCS1v15(), NoDigestInfo())`` (OpenSSL's
   ``RSA_private_encrypt``) and checks them with ``public_key.verify(…,
   NoDigestInfo())``;
3. ``<sign>…</sign>`` is inserted before ``</jdpay>``;
4. the result is 3DES-ECB encrypted with JD's own framing (no PKCS#5): a
   4-byte big-endian length of the UTF-8 plaintext, the plaintext, then zero
   bytes up to a multiple of 8; the ciphertext is written as lower-case hex
   and that hex text is Base64-encoded.

Amounts are integer fen on the wire (``<amount>1</amount>`` is 0.01 yuan).
Times are ``yyyyMMddHHmmss`` in China time (UTC+8).

JD's result codes and status values are not public in full; the ones used
here are *choices* (see :class:`JdCodes`) that settings.extra can override.
paycore ids (``pay_…``/``rfd_…``) are sent unchanged as ``tradeNum``: JD's
tradeNum takes letters, digits and ``_`` up to 32 characters (*unconfirmed*;
:func:`to_trade_num`/:func:`from_trade_num` are the single place to change).
"""
from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Sequence, Union
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from channels.formats import csv_text, xml_root
from channels.base import (
    ChannelResult, Notification, PayRequest, RefundRequest, RefundResult, RefundStatus, StatementLine,
    TradeRef, TradeStatus,
)

VERSION = "V2.0"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
CST = timezone(timedelta(hours=8))
CURRENCY = "CNY"

# result/code values (*unconfirmed* apart from 000000; see JdCodes)
CODE_OK = "000000"
CODE_SIGN_ERROR = "000001"       # 验签失败: the request's signature did not verify
CODE_USER_PAYING = "000002"      # 处理中: the customer is entering the password
CODE_DECRYPT_ERROR = "000003"    # 解密失败: encrypt could not be opened with the merchant's des key
CODE_NOT_FOUND = "000009"        # 交易不存在
CODE_DECLINED = "100001"         # 余额不足 (insufficient balance): the decline the simulator uses
CODE_REFUND_DECLINED = "100002"  # 退款失败
CODE_SYSTEM_ERROR = "999999"     # 系统异常: outcome unknown, query

# <tradeType> in query/notification/bill
TRADE_TYPE_PAY = "0"
TRADE_TYPE_REFUND = "1"

# <status> values (*unconfirmed*)
ST_CREATED, ST_PROCESSING, ST_SUCCESS, ST_PART_REFUND, ST_REFUND, ST_FAILED, ST_CLOSED, ST_REVOKED = (
    "0", "1", "2", "3", "4", "5", "6", "7")

_STATUS_MAP: dict[str, TradeStatus] = {
    ST_CREATED: TradeStatus.PENDING,
    ST_PROCESSING: TradeStatus.PROCESSING,
    ST_SUCCESS: TradeStatus.SUCCEEDED,
    ST_PART_REFUND: TradeStatus.SUCCEEDED,   # paid, then partly refunded
    ST_REFUND: TradeStatus.SUCCEEDED,        # paid, then fully refunded
    ST_FAILED: TradeStatus.FAILED,
    ST_CLOSED: TradeStatus.CLOSED,
    ST_REVOKED: TradeStatus.REVERSED,
}
_REFUND_STATUS_MAP: dict[str, RefundStatus] = {
    ST_CREATED: RefundStatus.PROCESSING,
    ST_PROCESSING: RefundStatus.PROCESSING,
    ST_SUCCESS: RefundStatus.SUCCEEDED,
    ST_FAILED: RefundStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class JdCodes:
    """The code/status tables; ``from_extra`` lets config override any of them.

    settings.extra keys: ``status_map`` ({"8": "CLOSED"}), ``refund_status_map``,
    ``user_paying_codes``, ``system_error_codes``, ``not_found_codes``,
    ``sign_error_codes`` (lists of result codes).
    """

    status_map: Mapping[str, TradeStatus] = field(default_factory=lambda: dict(_STATUS_MAP))
    refund_status_map: Mapping[str, RefundStatus] = field(default_factory=lambda: dict(_REFUND_STATUS_MAP))
    user_paying_codes: frozenset[str] = frozenset({CODE_USER_PAYING})
    system_error_codes: frozenset[str] = frozenset({CODE_SYSTEM_ERROR})
    not_found_codes: frozenset[str] = frozenset({CODE_NOT_FOUND})
    sign_error_codes: frozenset[str] = frozenset({CODE_SIGN_ERROR, CODE_DECRYPT_ERROR})

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> "JdCodes":
        d = cls()
        status = dict(d.status_map)
        status.update({str(k): TradeStatus(v) for k, v in (extra.get("status_map") or {}).items()})
        refund = dict(d.refund_status_map)
        refund.update({str(k): RefundStatus(v) for k, v in (extra.get("refund_status_map") or {}).items()})

        def codes(key: str, default: frozenset[str]) -> frozenset[str]:
            v = extra.get(key)
            return default if v is None else frozenset(str(c) for c in v)

        return cls(status, refund, codes("user_paying_codes", d.user_paying_codes),
                   codes("system_error_codes", d.system_error_codes),
                   codes("not_found_codes", d.not_found_codes),
                   codes("sign_error_codes", d.sign_error_codes))


class EnvelopeError(Exception):
    """An envelope that cannot be trusted. ``reason``: malformed | undecryptable | bad_signature."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


# -- money, time and ids ------------------------------------------------------
def fen_to_wire(amount: int) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"amount must be a non-negative int of fen, got {amount!r}")
    return str(amount)


def wire_to_fen(text: str | None) -> int | None:
    """``"1234"`` → 1234; None/empty → None; anything but plain digits is rejected."""
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not an amount in fen: {text!r}")
    return int(text)


def jd_time(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(CST).strftime("%Y%m%d%H%M%S")


def parse_jd_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CST)


def to_trade_num(paycore_id: str) -> str:
    return paycore_id


def from_trade_num(trade_num: str) -> str:
    return trade_num


def revoke_trade_num(out_trade_no: str) -> str:
    """The revoke's own tradeNum, derived so that a repeated revoke is the same request."""
    return "rvk_" + out_trade_no.split("_", 1)[-1]


# -- 3DES with JD's framing ---------------------------------------------------
def des_key_bytes(b64: str) -> bytes:
    key = base64.b64decode(b64, validate=True)
    if len(key) != 24:
        raise ValueError(f"JD des key must be 24 bytes, got {len(key)}")
    return key


def tdes_encrypt_hex(key: bytes, plaintext: str) -> str:
    data = plaintext.encode("utf-8")
    framed = len(data).to_bytes(4, "big") + data
    framed += b"\x00" * (-len(framed) % 8)
    enc = Cipher(TripleDES(key), modes.ECB()).encryptor()
    return (enc.update(framed) + enc.finalize()).hex()


def tdes_decrypt_hex(key: bytes, hex_text: str) -> str:
    """Inverse of :func:`tdes_encrypt_hex`; ValueError if the frame is inconsistent."""
    raw = bytes.fromhex(hex_text)
    if not raw or len(raw) % 8:
        raise ValueError("ciphertext is not a whole number of 3DES blocks")
    dec = Cipher(TripleDES(key), modes.ECB()).decryptor()
    framed = dec.update(raw) + dec.finalize()
    n = int.from_bytes(framed[:4], "big")
    # the zero padding is at most 7 bytes: anything else means a wrong key
    if n > len(framed) - 4 or len(framed) - 4 - n > 7 or any(framed[4 + n:]):
        raise ValueError("3DES frame length does not match (wrong key?)")
    return framed[4:4 + n].decode("utf-8")


def encrypt_field(key: bytes, xml: str) -> str:
    return base64.b64encode(tdes_encrypt_hex(key, xml).encode("ascii")).decode("ascii")


def decrypt_field(key: bytes, value: str) -> str:
    try:
        hex_text = base64.b64decode(value.strip(), validate=True).decode("ascii")
        return tdes_decrypt_hex(key, hex_text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise EnvelopeError("undecryptable", str(e)) from e


# -- signing ------------------------------------------------------------------
_JAVA_TRIM = "".join(chr(i) for i in range(33))
_LINE_BREAKS = re.compile(r"[\t\r\n]")


def normalise_xml(xml: str) -> str:
    """JD's canonical text: XML declaration added if absent, tabs/CR/LF dropped, pieces trimmed."""
    if not xml.strip().startswith("<?xml"):
        xml = XML_HEAD + xml
    return "".join(p.strip(_JAVA_TRIM) for p in _LINE_BREAKS.split(xml))


def without_sign(xml: str) -> str:
    """Remove ``<sign>…</sign>`` (first start tag to last end tag, as JD does)."""
    i, j = xml.find("<sign>"), xml.rfind("</sign>")
    if i < 0 or j < i:
        return xml
    return xml[:i] + xml[j + len("</sign>"):]


def sign_of(xml: str) -> str | None:
    i, j = xml.find("<sign>"), xml.rfind("</sign>")
    if i < 0 or j < i:
        return None
    return xml[i + len("<sign>"):j]


def sign_source(xml: str) -> bytes:
    """What JD RSA-encrypts: the UTF-8 lower-case hex SHA-256 of the normalised XML without sign."""
    canonical = without_sign(normalise_xml(xml))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest().encode("ascii")


def rsa_sign(private_key: rsa.RSAPrivateKey, xml: str) -> str:
    return base64.b64encode(private_key.sign(sign_source(xml), padding.PKCS1v15(), NoDigestInfo())).decode("ascii")


def signed_xml(private_key: rsa.RSAPrivateKey, xml: str) -> str:
    """The normalised XML with its ``<sign>`` inserted before ``</jdpay>``."""
    canonical = without_sign(normalise_xml(xml))
    if not canonical.endswith("</jdpay>"):
        raise ValueError("JD XML must end with </jdpay>")
    return canonical[:-len("</jdpay>")] + f"<sign>{rsa_sign(private_key, canonical)}</sign></jdpay>"


def verify_xml(public_key: rsa.RSAPublicKey, xml: str) -> bool:
    sig = sign_of(xml)
    if not sig:
        return False
    try:
        public_key.verify(base64.b64decode(sig, validate=True), sign_source(xml), padding.PKCS1v15(), NoDigestInfo())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# -- XML ----------------------------------------------------------------------
Value = Union[str, int, None, Sequence[tuple[str, Any]]]


def build_xml(fields: Sequence[tuple[str, Value]]) -> str:
    """``<jdpay>`` with one element per field in the given order; None/"" are left out,
    a sequence of pairs becomes a nested element (``result``)."""
    def el(k: str, v: Value) -> str:
        if isinstance(v, (list, tuple)):
            return f"<{k}>" + "".join(el(a, b) for a, b in v if b not in (None, "")) + f"</{k}>"
        return f"<{k}>{escape(str(v))}</{k}>"
    return XML_HEAD + "<jdpay>" + "".join(el(k, v) for k, v in fields if v not in (None, "")) + "</jdpay>"


def parse_xml(xml: str | bytes) -> dict[str, Any]:
    """Top-level children of ``<jdpay>``: text for leaves, a dict for nested ones.
    ValueError on anything that is not such a document (DTDs are refused)."""
    root = xml_root(xml, "jdpay")
    out: dict[str, Any] = {}
    for child in root:
        out[child.tag] = {g.tag: (g.text or "") for g in child} if len(child) else (child.text or "")
    return out


# -- envelopes ----------------------------------------------------------------
@dataclass(slots=True)
class Envelope:
    merchant: str
    code: str | None           # result/code outside the encryption (answers, notifications)
    desc: str | None
    fields: dict[str, Any] | None  # the decrypted, verified business fields; None when no encrypt
    xml: str | None = None     # the decrypted XML


def seal(private_key: rsa.RSAPrivateKey, des_key: bytes, merchant: str, fields: Sequence[tuple[str, Value]],
         result: tuple[str, str] | None = None) -> bytes:
    """Sign, encrypt and wrap business fields (which should start with version, merchant)."""
    inner = signed_xml(private_key, build_xml(fields))
    outer: list[tuple[str, Value]] = [("version", VERSION), ("merchant", merchant)]
    if result is not None:
        outer.append(("result", (("code", result[0]), ("desc", result[1]))))
    outer.append(("encrypt", encrypt_field(des_key, inner)))
    return build_xml(outer).encode("utf-8")


def error_envelope(merchant: str, code: str, desc: str) -> bytes:
    """An envelope-level failure: a result and nothing encrypted (so nothing signed)."""
    return build_xml([("version", VERSION), ("merchant", merchant),
                      ("result", (("code", code), ("desc", desc)))]).encode("utf-8")


def open_envelope(public_key: rsa.RSAPublicKey, des_key: bytes, raw: bytes) -> Envelope:
    """Parse, decrypt and verify; EnvelopeError says why it cannot be trusted."""
    try:
        outer = parse_xml(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise EnvelopeError("malformed", str(e)) from e
    result = outer.get("result") if isinstance(outer.get("result"), dict) else {}
    code, desc = result.get("code") or None, result.get("desc") or None
    merchant = outer.get("merchant") or ""
    if not isinstance(merchant, str):
        raise EnvelopeError("malformed", "merchant is not text")
    encrypted = outer.get("encrypt")
    if not encrypted:
        return Envelope(merchant, code, desc, None)
    if not isinstance(encrypted, str):
        raise EnvelopeError("malformed", "encrypt is not text")
    xml = decrypt_field(des_key, encrypted)
    if not verify_xml(public_key, xml):
        raise EnvelopeError("bad_signature", "JD signature does not verify")
    try:
        fields = parse_xml(xml)
    except ValueError as e:
        raise EnvelopeError("malformed", str(e)) from e
    if fields.get("merchant", merchant) != merchant:
        raise EnvelopeError("malformed", "merchant inside and outside the envelope differ")
    inner_result = fields.get("result") if isinstance(fields.get("result"), dict) else {}
    return Envelope(merchant, inner_result.get("code") or code, inner_result.get("desc") or desc, fields, xml)


# -- requests -----------------------------------------------------------------
def _head(merchant: str) -> list[tuple[str, Value]]:
    return [("version", VERSION), ("merchant", merchant)]


def fkmpay_request(req: PayRequest, merchant: str, now: datetime) -> list[tuple[str, Value]]:
    assert req.auth_code, "barcode needs the payment code"
    return _head(merchant) + [
        ("device", req.terminal_id), ("tradeNum", to_trade_num(req.out_trade_no)), ("tradeName", req.subject),
        ("tradeTime", jd_time(now)), ("amount", fen_to_wire(req.amount)), ("currency", CURRENCY),
        ("notifyUrl", req.notify_url), ("token", req.auth_code), ("bizTp", req.store_id),
    ]


def uniorder_request(req: PayRequest, merchant: str, now: datetime, trade_type: str) -> list[tuple[str, Value]]:
    """``trade_type`` QR (answer carries qrCode) or GEN (answer carries orderId for the H5 cashier).
    ``callbackUrl``: where the H5 cashier sends the customer's browser after paying (GEN with a
    ``PayRequest.return_url`` only; the uniorder field public SDKs name, next to the
    server-to-server ``notifyUrl``)."""
    expire = max(int((req.expire_at - now).total_seconds()), 60)
    callback = req.return_url if trade_type == "GEN" else None
    return _head(merchant) + [
        ("device", req.terminal_id), ("tradeNum", to_trade_num(req.out_trade_no)), ("tradeName", req.subject),
        ("tradeTime", jd_time(now)), ("amount", fen_to_wire(req.amount)), ("orderType", "1"),
        ("currency", CURRENCY), ("callbackUrl", callback), ("notifyUrl", req.notify_url), ("ip", req.client_ip),
        ("tradeType", trade_type), ("expireTime", str(expire)),
    ]


def query_request(merchant: str, trade_num: str, trade_type: str, o_trade_num: str | None = None,
                  ) -> list[tuple[str, Value]]:
    return _head(merchant) + [("tradeNum", trade_num), ("oTradeNum", o_trade_num), ("tradeType", trade_type)]


def refund_request(req: RefundRequest, merchant: str, now: datetime) -> list[tuple[str, Value]]:
    return _head(merchant) + [
        ("tradeNum", to_trade_num(req.out_refund_no)), ("oTradeNum", to_trade_num(req.out_trade_no)),
        ("amount", fen_to_wire(req.refund_amount)), ("currency", CURRENCY), ("tradeTime", jd_time(now)),
        ("notifyUrl", req.notify_url), ("note", req.reason),
    ]


def revoke_request(ref: TradeRef, merchant: str, now: datetime) -> list[tuple[str, Value]]:
    return _head(merchant) + [
        ("tradeNum", revoke_trade_num(ref.out_trade_no)), ("oTradeNum", to_trade_num(ref.out_trade_no)),
        ("amount", fen_to_wire(ref.amount)), ("currency", CURRENCY), ("tradeTime", jd_time(now)),
    ]


def bill_request(merchant: str, day: date) -> list[tuple[str, Value]]:
    return _head(merchant) + [("billDate", day.strftime("%Y%m%d")), ("billType", "ALL")]


# -- answers ------------------------------------------------------------------
def _text(fields: Mapping[str, Any] | None, key: str) -> str | None:
    v = (fields or {}).get(key)
    return v if isinstance(v, str) and v else None


def trade_result(code: str | None, desc: str | None, fields: Mapping[str, Any] | None, codes: JdCodes,
                 ) -> ChannelResult:
    """A pay/query/revoke answer (not a system error, which the adapter raises) as a ChannelResult."""
    channel_no = _text(fields, "orderId")
    amount = wire_to_fen(_text(fields, "amount"))
    if code in codes.user_paying_codes:
        return ChannelResult(TradeStatus.PROCESSING, channel_trade_no=channel_no, amount=amount)
    if code in codes.not_found_codes:
        return ChannelResult(TradeStatus.NOT_FOUND, failure_code=code, failure_message=desc)
    if code != CODE_OK:
        return ChannelResult(TradeStatus.FAILED, channel_trade_no=channel_no, failure_code=code or "UNKNOWN",
                             failure_message=desc)
    status_code = _text(fields, "status")
    status = codes.status_map.get(status_code or "")
    if status is None:
        raise ValueError(f"unknown JD status {status_code!r}")
    paid_at = parse_jd_time(_text(fields, "payTime")) if status is TradeStatus.SUCCEEDED else None
    failure = (status_code, desc) if status is TradeStatus.FAILED else (None, None)
    return ChannelResult(status, channel_trade_no=channel_no, paid_at=paid_at, amount=amount,
                         failure_code=failure[0], failure_message=failure[1])


def refund_result(code: str | None, desc: str | None, fields: Mapping[str, Any] | None, codes: JdCodes,
                  ) -> RefundResult:
    if code != CODE_OK:
        return RefundResult(RefundStatus.FAILED, failure_code=code or "UNKNOWN", failure_message=desc)
    status_code = _text(fields, "status")
    status = codes.refund_status_map.get(status_code or "")
    if status is None:
        raise ValueError(f"unknown JD refund status {status_code!r}")
    return RefundResult(status, channel_refund_no=_text(fields, "refundId"),
                        failure_code=status_code if status is RefundStatus.FAILED else None)


def notification(env: Envelope, codes: JdCodes) -> Notification:
    """A verified notification envelope → Notification; ValueError if fields are missing."""
    f = env.fields or {}
    trade_num, trade_type = _text(f, "tradeNum"), _text(f, "tradeType") or TRADE_TYPE_PAY
    if not trade_num:
        raise ValueError("notification without tradeNum")
    amount = wire_to_fen(_text(f, "amount"))
    if trade_type == TRADE_TYPE_REFUND:
        o_trade_num = _text(f, "oTradeNum")
        if not o_trade_num:
            raise ValueError("refund notification without oTradeNum")
        return Notification(kind="refund", out_trade_no=from_trade_num(o_trade_num), merchant_ref=env.merchant,
                            amount=amount, out_refund_no=from_trade_num(trade_num),
                            refund=refund_result(env.code or CODE_OK, env.desc, f, codes),
                            notification_id=f"{trade_num}:{_text(f, 'status')}")
    return Notification(kind="payment", out_trade_no=from_trade_num(trade_num), merchant_ref=env.merchant,
                        amount=amount, payment=trade_result(env.code or CODE_OK, env.desc, f, codes),
                        notification_id=f"{trade_num}:{_text(f, 'status')}")


# -- the daily bill -----------------------------------------------------------
BILL_HEADER = ("tradeNum", "oTradeNum", "tradeType", "orderId", "amount", "currency", "status", "tradeTime")


def bill_csv(rows: Sequence[Sequence[str]]) -> str:
    return csv_text(BILL_HEADER, rows)


def parse_bill(text: str) -> list[StatementLine]:
    """The bill's CSV (header :data:`BILL_HEADER`) → statement lines; failed rows are skipped."""
    lines: list[StatementLine] = []
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != BILL_HEADER:
        raise ValueError(f"unexpected JD bill header {reader.fieldnames!r}")
    for row in reader:
        if row["status"] != ST_SUCCESS:
            continue
        amount = wire_to_fen(row["amount"])
        if amount is None:
            raise ValueError("bill row without amount")
        if row["tradeType"] == TRADE_TYPE_REFUND:
            lines.append(StatementLine("refund", from_trade_num(row["oTradeNum"]), row["orderId"] or None, amount,
                                       "REFUNDED", out_refund_no=from_trade_num(row["tradeNum"])))
        else:
            lines.append(StatementLine("payment", from_trade_num(row["tradeNum"]), row["orderId"] or None, amount,
                                       "SUCCEEDED"))
    return lines
