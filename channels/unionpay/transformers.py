"""UnionPay ACP 5.1.0: pure mappings between channels.base types and the wire.

Everything here is deterministic apart from RSA-PKCS#1 v1.5 encryption's
random padding; nothing does I/O. The adapter (paycore's side) and the
simulator (UnionPay's side) both use these functions, so the wire format
lives in one place.

Wire shapes:

* requests and notifications are ``application/x-www-form-urlencoded``;
* UnionPay's synchronous answers are raw ``k=v&k=v`` text whose values are
  *not* URL-encoded; composite values are wrapped in ``{…}`` and may hold
  ``&`` and ``=`` (``reserved={seType=04}``), so they are split brace-aware;
* signMethod 01: ``Base64(SHA256withRSA(hex(SHA256(sorted k=v))))`` over
  every non-empty field but ``signature``, raw (not URL-encoded) values.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Mapping
from urllib.parse import parse_qsl, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from channels.base import (
    ChannelError,
    ChannelResult,
    Method,
    Notification,
    PayRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    StatementLine,
    TradeStatus,
    refused_by_provider,
)
from channels import emv

Fields = dict[str, str]

VERSION = "5.1.0"
ENCODING = "UTF-8"
SIGN_METHOD = "01"
CURRENCY_CNY = "156"
CHANNEL_TYPE_MOBILE = "08"
ACCESS_TYPE_MERCHANT = "0"
BIZ_TYPE = "000000"
#: ACP's 手机控件支付 (in-app ``tn``) product; config ``extra.app_biz_type`` overrides
APP_BIZ_TYPE = "000201"

BACK_TRANS_PATH = "/gateway/api/backTransReq.do"
QUERY_PATH = "/gateway/api/queryTrans.do"
APP_TRANS_PATH = "/gateway/api/appTransReq.do"
#: the file-transfer service (filedownload.95516.com/ in production), root path
FILE_TRANS_PATH = "/"

TXN_QUERY = "00"
TXN_CONSUME = "01"
TXN_REFUND = "04"
TXN_CANCEL = "31"
TXN_FILE = "76"

SUB_CONSUME = "01"     # plain consume: in-app tn and contactless
SUB_B2C = "06"         # merchant scans the customer's code (qrNo)
SUB_C2B = "07"         # customer scans the merchant's code (qrCode)

RESP_OK = "00"
#: 03 timeout / 04 state unknown: ask again by query (ACP appendix)
RESP_UNKNOWN = frozenset({"03", "04"})
#: 05 "accepted, query the result later": the customer is still confirming
RESP_ACCEPTED = "05"
#: 10 bad format, 11 bad signature, 13 fields missing: nothing happened at UnionPay
RESP_REJECTED = frozenset({"10", "11", "13"})
#: of those, what the request's content causes (the caller's error, never a channel fault);
#: 11 (our signature) is ours: a wrong key must open the breaker
RESP_CALLER = frozenset({"10", "13"})
#: the ACP field a refusal names in brackets ("报文格式错误[qrNo]") → the API field behind it
REFUSED_FIELDS = {"qrNo": "auth_code", "accNo": "nfc.token", "expired": "nfc.expiry", "customerInfo": "nfc.expiry",
                  "ICTransData": "nfc.emv_data", "9F26": "nfc.cryptogram", "txnAmt": "amount"}
RESP_DUPLICATE = "12"
RESP_NO_SUCH_TXN = "34"
RESP_FILE_NOT_FOUND = "98"

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_ORDER_ID_RE = re.compile(r"^[0-9A-Za-z]{8,40}$")
_PAYCORE_ID_RE = re.compile(r"^(pay|rfd)_([0-9a-z]{5,36})$")
_PAYCORE_MAPPED_RE = re.compile(r"^(pay|rfd)([0-9a-z]{5,36})$")


@dataclass(frozen=True, slots=True)
class Merchant:
    """Who signs: ``merId``, our signing ``certId`` and UnionPay's ``encryptCertId``."""

    mer_id: str
    cert_id: str
    encrypt_cert_id: str


# -- ids, time, money --------------------------------------------------------
def to_order_id(paycore_id: str) -> str:
    """``pay_…``/``rfd_…`` → an ACP orderId (8–40 alphanumerics, no ``_``): the
    underscore is dropped; ids paycore never makes must already be valid."""
    m = _PAYCORE_ID_RE.match(paycore_id)
    order_id = m.group(1) + m.group(2) if m else paycore_id
    if not _ORDER_ID_RE.match(order_id):
        raise ValueError(f"cannot map {paycore_id!r} to a UnionPay orderId")
    return order_id


def from_order_id(order_id: str) -> str:
    """The inverse of :func:`to_order_id` (paycore ids are lowercase, so a
    ``pay``/``rfd`` prefix followed by [0-9a-z] is always one of ours)."""
    m = _PAYCORE_MAPPED_RE.match(order_id)
    return f"{m.group(1)}_{m.group(2)}" if m else order_id


def cancel_order_id(order_id: str) -> str:
    """The orderId of the 撤销 (txnType 31) of a payment: derived, so a repeated
    reverse is the same transaction and UnionPay treats it as a duplicate."""
    return ("C" + order_id)[:40]


def txn_time(at: datetime) -> str:
    """yyyyMMddHHmmss in Beijing time (naive datetimes are taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def parse_txn_time(value: str) -> datetime:
    if not re.fullmatch(r"\d{14}", value):
        raise ValueError(f"bad txnTime {value!r}")
    return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)


def trace_time_to_datetime(trace_time: str, txn_time_value: str) -> datetime | None:
    """``traceTime`` is MMDDhhmmss (no year): take the year of ``txnTime``, and
    the next year when the trace month is before the order's (Dec → Jan)."""
    try:
        base = parse_txn_time(txn_time_value)
        if not re.fullmatch(r"\d{10}", trace_time):
            return None
        year = base.year + (1 if int(trace_time[:2]) < base.month else 0)
        return datetime.strptime(f"{year}{trace_time}", "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
    except ValueError:
        return None


def fen_to_txn_amt(fen: int) -> str:
    """ACP's txnAmt is already in fen: a plain positive integer string."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen <= 0:
        raise ValueError(f"amount must be a positive int of fen, got {fen!r}")
    return str(fen)


def txn_amt_to_fen(value: str) -> int:
    if not re.fullmatch(r"\d{1,12}", value or ""):
        raise ValueError(f"bad txnAmt {value!r}")
    return int(value)


def settle_date(day: date) -> str:
    return day.strftime("%m%d")


def settle_date_to_day(mmdd: str, today: date) -> date:
    """MMDD → the most recent such day on or before ``today`` (the file of a
    settle date in the future means last year's)."""
    if not re.fullmatch(r"\d{4}", mmdd):
        raise ValueError(f"bad settleDate {mmdd!r}")
    day = date(today.year, int(mmdd[:2]), int(mmdd[2:]))
    return day if day <= today else day.replace(year=today.year - 1)


# -- signing -----------------------------------------------------------------
def string_to_sign(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature" and fields[k] != "")


def digest_hex(fields: Mapping[str, str]) -> str:
    """The first hash of the double hash: lowercase hex SHA-256 of the sorted string."""
    return hashlib.sha256(string_to_sign(fields).encode("utf-8")).hexdigest()


def sign(fields: Mapping[str, str], key: RSAPrivateKey) -> str:
    raw = key.sign(digest_hex(fields).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def signed(fields: Mapping[str, str], key: RSAPrivateKey) -> Fields:
    out = {k: v for k, v in fields.items() if v != "" and k != "signature"}
    out["signature"] = sign(out, key)
    return out


def verify(fields: Mapping[str, str], key: RSAPublicKey) -> bool:
    sig = fields.get("signature", "")
    try:
        raw = base64.b64decode(sig, validate=True)
        key.verify(raw, digest_hex(fields).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return bool(sig)


# -- encodings ---------------------------------------------------------------
def encode_form(fields: Mapping[str, str]) -> bytes:
    return urlencode(list(fields.items())).encode("ascii")


def parse_form(body: bytes) -> Fields:
    """A form body → fields; raises ValueError on anything that is not one."""
    text = body.decode("utf-8")
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict")
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("repeated field")
    return fields


def encode_answer(fields: Mapping[str, str]) -> str:
    """UnionPay's answer text: raw ``k=v`` joined by ``&`` (values not encoded)."""
    return "&".join(f"{k}={v}" for k, v in fields.items())


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced braces")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError("unbalanced braces")
    parts.append(text[start:])
    return parts


def parse_answer(text: str) -> Fields:
    """Raw ACP answer text → fields (brace-aware); ValueError when it is not one."""
    fields: Fields = {}
    for part in _split_top(text.strip(), "&"):
        key, eq, value = part.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key) or key in fields:
            raise ValueError(f"not an ACP answer near {part[:20]!r}")
        fields[key] = value
    return fields


def composite(values: Mapping[str, str]) -> str:
    """ACP composite field ``{k=v&k=v}`` (reserved, reqReserved, customerInfo)."""
    return "{" + "&".join(f"{k}={v}" for k, v in values.items()) + "}"


def parse_composite(value: str) -> Fields:
    if not (value.startswith("{") and value.endswith("}")):
        raise ValueError("not a composite field")
    inner = value[1:-1]
    return parse_answer(inner) if inner else {}


# -- sensitive fields --------------------------------------------------------
# ACP encrypts accNo and customerInfo's encryptedInfo with UnionPay's
# encryption certificate using RSA/ECB/PKCS1Padding; the provider's public key
# stands in for that certificate and the simulator decrypts with its private key.
def encrypt_sensitive(value: str, key: RSAPublicKey) -> str:
    return base64.b64encode(key.encrypt(value.encode("utf-8"), padding.PKCS1v15())).decode("ascii")


def decrypt_sensitive(value: str, key: RSAPrivateKey) -> str:
    return key.decrypt(base64.b64decode(value, validate=True), padding.PKCS1v15()).decode("utf-8")


def customer_info(expired: str, key: RSAPublicKey) -> str:
    """``customerInfo`` = Base64(``{encryptedInfo=…}``), the expiry (YYMM) encrypted inside."""
    inner = composite({"encryptedInfo": encrypt_sensitive(f"expired={expired}", key)})
    return base64.b64encode(inner.encode("utf-8")).decode("ascii")


def parse_customer_info(value: str, key: RSAPrivateKey) -> Fields:
    outer = parse_composite(base64.b64decode(value, validate=True).decode("utf-8"))
    clear = {k: v for k, v in outer.items() if k != "encryptedInfo"}
    if "encryptedInfo" in outer:
        clear.update(parse_answer(decrypt_sensitive(outer["encryptedInfo"], key)))
    return clear


# -- EMV TLV (ICTransData) ---------------------------------------------------
CRYPTOGRAM_TAG = emv.CRYPTOGRAM_TAG
tlv_parse, tlv_build = emv.tlv_parse, emv.tlv_build


def cryptogram_bytes(cryptogram: str) -> bytes:
    """The application cryptogram as the kernel gives it: hex (8-byte ARQC);
    anything else (a wallet's base64 online cryptogram) travels as its text."""
    if re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", cryptogram):
        return bytes.fromhex(cryptogram)
    return cryptogram.encode("utf-8")


def ic_trans_data(emv_data: str | None, cryptogram: str) -> str:
    """``ICTransData``: the chip's TLV with the cryptogram as tag 9F26 (replacing
    any the chip data already holds). Raises ValueError on malformed chip data."""
    items = [(t, v) for t, v in tlv_parse(emv_data or "") if t != CRYPTOGRAM_TAG]
    items.append((CRYPTOGRAM_TAG, cryptogram_bytes(cryptogram)))
    return tlv_build(items)


# -- requests ----------------------------------------------------------------
def common(mer: Merchant, txn_type: str, txn_sub_type: str, at: datetime, *, biz_type: str = BIZ_TYPE) -> Fields:
    return {
        "version": VERSION, "encoding": ENCODING, "signMethod": SIGN_METHOD, "certId": mer.cert_id,
        "txnType": txn_type, "txnSubType": txn_sub_type, "bizType": biz_type,
        "channelType": CHANNEL_TYPE_MOBILE, "accessType": ACCESS_TYPE_MERCHANT, "merId": mer.mer_id,
        "txnTime": txn_time(at),
    }


def payment_reserved(wallet: str | None) -> str:
    """reqReserved of a payment: echoed back in answers and notifications, so it
    tells paycore which wallet paid."""
    return composite({"wallet": wallet}) if wallet else ""


def refund_reserved(out_trade_no: str) -> str:
    """reqReserved of a refund: the payment it belongs to (the refund notification
    names only origQryId, but echoes reqReserved)."""
    return composite({"payment": out_trade_no})


def reserved_value(fields: Mapping[str, str], key: str) -> str | None:
    try:
        return parse_composite(fields.get("reqReserved", "")).get(key) or None
    except ValueError:
        return None


def pay_request(req: PayRequest, mer: Merchant, *, wallet: str | None = None, se_type: str | None = None,
                app_biz_type: str = APP_BIZ_TYPE, encrypt_key: RSAPublicKey | None = None) -> tuple[str, Fields]:
    """(path, fields) of a consume for ``req.method``; raises ValueError when
    the request lacks what the method needs."""
    at = req.created_at or datetime.now(timezone.utc)
    sub, path, biz = {
        Method.BARCODE: (SUB_B2C, BACK_TRANS_PATH, BIZ_TYPE),
        Method.QR: (SUB_C2B, BACK_TRANS_PATH, BIZ_TYPE),
        Method.NFC: (SUB_CONSUME, BACK_TRANS_PATH, BIZ_TYPE),
        Method.APP: (SUB_CONSUME, APP_TRANS_PATH, app_biz_type),
    }.get(req.method, (None, "", ""))
    if sub is None:
        raise ValueError(f"UnionPay has no {req.method} payment")
    f = common(mer, TXN_CONSUME, sub, at, biz_type=biz)
    f.update(orderId=to_order_id(req.out_trade_no), txnAmt=fen_to_txn_amt(req.amount),
             currencyCode=CURRENCY_CNY, backUrl=req.notify_url)
    if req.terminal_id:
        f["termId"] = req.terminal_id
    if req.method is Method.BARCODE:
        if not req.auth_code or not re.fullmatch(r"\d{1,20}", req.auth_code):
            raise ValueError("barcode payment needs a numeric auth_code (qrNo)")
        f["qrNo"] = req.auth_code
    elif req.method in (Method.QR, Method.APP):
        f["payTimeout"] = txn_time(req.expire_at)
        if req.method is Method.APP and se_type:
            f["reserved"] = composite({"seType": se_type})
    elif req.method is Method.NFC:
        nfc = req.nfc
        if nfc is None or encrypt_key is None:
            raise ValueError("contactless payment needs nfc data and UnionPay's encryption key")
        wallet = nfc.wallet or wallet
        f.update(accNo=encrypt_sensitive(nfc.token, encrypt_key), encryptCertId=mer.encrypt_cert_id,
                 customerInfo=customer_info(nfc.expiry, encrypt_key),
                 ICTransData=ic_trans_data(nfc.emv_data, nfc.cryptogram))
    f["reqReserved"] = payment_reserved(wallet)
    return path, {k: v for k, v in f.items() if v != ""}


def query_request(mer: Merchant, order_id: str, at: datetime) -> Fields:
    f = common(mer, TXN_QUERY, "00", at)
    f.update(orderId=order_id)
    return f


def refund_request(req: RefundRequest, mer: Merchant, at: datetime) -> Fields:
    if not req.channel_trade_no:
        raise ValueError("a UnionPay refund needs the payment's queryId (channel_trade_no)")
    f = common(mer, TXN_REFUND, "00", at)
    f.update(orderId=to_order_id(req.out_refund_no), origQryId=req.channel_trade_no,
             txnAmt=fen_to_txn_amt(req.refund_amount), currencyCode=CURRENCY_CNY, backUrl=req.notify_url,
             reqReserved=refund_reserved(req.out_trade_no))
    return {k: v for k, v in f.items() if v != ""}


def cancel_request(mer: Merchant, order_id: str, orig_qry_id: str, amount: int, at: datetime,
                   back_url: str = "") -> Fields:
    f = common(mer, TXN_CANCEL, "00", at)
    f.update(orderId=cancel_order_id(order_id), origQryId=orig_qry_id, txnAmt=fen_to_txn_amt(amount),
             currencyCode=CURRENCY_CNY, backUrl=back_url)
    return {k: v for k, v in f.items() if v != ""}


def file_request(mer: Merchant, day: date, at: datetime) -> Fields:
    f = common(mer, TXN_FILE, "01", at)
    f.update(settleDate=settle_date(day), fileType="00")
    del f["channelType"]
    return f


# -- answers → results --------------------------------------------------------
def _unknown(what: str, code: str, msg: str) -> ChannelError:
    return ChannelError(f"unionpay {what}: respCode {code} ({msg}), outcome unknown", retriable=True,
                        kind="system_error")


def refused_field(msg: str) -> str | None:
    """The API field a refusal message names ("报文格式错误[accNo/customerInfo]" → nfc.token), if any."""
    inner = msg[msg.find("[") + 1:msg.find("]")] if "[" in msg and "]" in msg else ""
    for name in inner.split("/"):
        if name.strip() in REFUSED_FIELDS:
            return REFUSED_FIELDS[name.strip()]
    return None


def check_protocol(what: str, a: Mapping[str, str]) -> str:
    """The respCode, after turning protocol-level answers into ChannelErrors."""
    code, msg = a.get("respCode", ""), a.get("respMsg", "")
    if not code:
        raise ChannelError(f"unionpay {what}: answer without respCode", retriable=True, kind="garbage")
    if code in RESP_CALLER:
        raise refused_by_provider(f"unionpay {what}: request refused, respCode {code} ({msg})", refused_field(msg))
    if code in RESP_REJECTED:
        raise ChannelError(f"unionpay {what}: request refused, respCode {code} ({msg})", retriable=False,
                           kind="rejected")
    if code in RESP_UNKNOWN or code == RESP_DUPLICATE:
        raise _unknown(what, code, msg)
    return code


def _amount(a: Mapping[str, str]) -> int | None:
    try:
        return txn_amt_to_fen(a["txnAmt"]) if a.get("txnAmt") else None
    except ValueError:
        return None


def _paid_at(a: Mapping[str, str]) -> datetime | None:
    return trace_time_to_datetime(a.get("traceTime", ""), a.get("txnTime", ""))


def pay_result(a: Mapping[str, str], method: Method, *, wallet: str | None = None,
               se_type: str | None = None) -> ChannelResult:
    """A consume's synchronous answer. 00 on barcode/nfc means paid; on qr/app it
    means the order exists (qrCode / tn). 05 means the customer is still
    confirming (PROCESSING, query); 03/04/12 are unknown (ChannelError)."""
    code = check_protocol("pay", a)
    wallet = reserved_value(a, "wallet") or wallet
    order_based = method in (Method.QR, Method.APP)
    if code == RESP_ACCEPTED:
        return ChannelResult(TradeStatus.PENDING if order_based else TradeStatus.PROCESSING,
                             channel_trade_no=a.get("queryId") or None, wallet=wallet)
    if code != RESP_OK:
        return ChannelResult(TradeStatus.FAILED, failure_code=code, failure_message=a.get("respMsg") or None,
                             wallet=wallet)
    if method is Method.QR:
        if not a.get("qrCode"):
            raise ChannelError("unionpay pay: 00 without qrCode", retriable=True, kind="garbage")
        return ChannelResult(TradeStatus.PENDING, qr_code=a["qrCode"])
    if method is Method.APP:
        if not a.get("tn"):
            raise ChannelError("unionpay pay: 00 without tn", retriable=True, kind="garbage")
        params = {"tn": a["tn"]}
        if se_type:
            params["seType"] = se_type
        return ChannelResult(TradeStatus.PENDING, pay_params=params, wallet=wallet)
    return ChannelResult(TradeStatus.SUCCEEDED, channel_trade_no=a.get("queryId") or None, amount=_amount(a),
                         paid_at=_paid_at(a), wallet=wallet)


def _orig_status(code: str, method: Method) -> TradeStatus:
    if code == RESP_OK:
        return TradeStatus.SUCCEEDED
    if code in RESP_UNKNOWN or code == RESP_ACCEPTED:
        return TradeStatus.PENDING if method in (Method.QR, Method.APP) else TradeStatus.PROCESSING
    return TradeStatus.FAILED


def query_result(a: Mapping[str, str], method: Method, *, wallet: str | None = None) -> ChannelResult:
    """A query (txnType 00) answer: respCode is the query's own outcome,
    origRespCode the payment's (00 paid, 03/04/05 keep querying, else failed)."""
    code, msg = a.get("respCode", ""), a.get("respMsg", "")
    if code == RESP_NO_SUCH_TXN:
        return ChannelResult(TradeStatus.NOT_FOUND, failure_code=code, failure_message=msg or None)
    code = check_protocol("query", a)
    if code != RESP_OK:
        raise _unknown("query", code, msg)
    orig = a.get("origRespCode", "")
    if not orig:
        raise ChannelError("unionpay query: answer without origRespCode", retriable=True, kind="garbage")
    status = _orig_status(orig, method)
    wallet = reserved_value(a, "wallet") or wallet
    return ChannelResult(
        status, channel_trade_no=a.get("queryId") or None, amount=_amount(a), wallet=wallet,
        paid_at=_paid_at(a) if status is TradeStatus.SUCCEEDED else None,
        failure_code=orig if status is TradeStatus.FAILED else None,
        failure_message=(a.get("origRespMsg") or None) if status is TradeStatus.FAILED else None)


def refund_result(a: Mapping[str, str]) -> RefundResult:
    """A refund's synchronous answer: 00 is *accepted*; the notification (or a
    query) brings the outcome."""
    code = check_protocol("refund", a)
    if code == RESP_OK or code == RESP_ACCEPTED:
        return RefundResult(RefundStatus.PROCESSING, channel_refund_no=a.get("queryId") or None)
    return RefundResult(RefundStatus.FAILED, failure_code=code, failure_message=a.get("respMsg") or None)


def refund_query_result(a: Mapping[str, str]) -> RefundResult:
    code, msg = a.get("respCode", ""), a.get("respMsg", "")
    if code == RESP_NO_SUCH_TXN:   # not arrived *yet* is all it says: re-send the same orderId
        return RefundResult(RefundStatus.NOT_FOUND, failure_code=code, failure_message=msg or None)
    code = check_protocol("refund query", a)
    if code != RESP_OK:
        raise _unknown("refund query", code, msg)
    orig = a.get("origRespCode", "")
    if orig == RESP_OK:
        return RefundResult(RefundStatus.SUCCEEDED, channel_refund_no=a.get("queryId") or None)
    if orig in RESP_UNKNOWN or orig == RESP_ACCEPTED:
        return RefundResult(RefundStatus.PROCESSING, channel_refund_no=a.get("queryId") or None)
    if not orig:
        raise ChannelError("unionpay refund query: answer without origRespCode", retriable=True, kind="garbage")
    return RefundResult(RefundStatus.FAILED, channel_refund_no=a.get("queryId") or None, failure_code=orig,
                        failure_message=a.get("origRespMsg") or None)


def cancel_result(a: Mapping[str, str], done: TradeStatus) -> ChannelResult | None:
    """A 撤销 (31) answer: ``done`` (REVERSED/CLOSED) on 00; ``retry=True`` when
    the outcome is unknown; None when UnionPay refused to cancel (the caller
    asks what the payment's real state is)."""
    code, msg = a.get("respCode", ""), a.get("respMsg", "")
    if code in RESP_REJECTED or not code:
        check_protocol("cancel", a)
    if code == RESP_OK:
        return ChannelResult(done, channel_trade_no=a.get("origQryId") or None)
    if code in RESP_UNKNOWN or code in (RESP_ACCEPTED, RESP_DUPLICATE):
        return ChannelResult(TradeStatus.PROCESSING, retry=True, failure_code=code, failure_message=msg or None)
    return None


# -- notifications -----------------------------------------------------------
def notification(fields: Mapping[str, str], *, wallet: str | None = None) -> Notification:
    """A verified backUrl notification → Notification. The signed txnType tells a
    payment (01) from a refund (04). Raises ValueError when it is neither or
    lacks what it must name."""
    txn_type, code, msg = fields.get("txnType"), fields.get("respCode", ""), fields.get("respMsg", "")
    order_id = fields.get("orderId", "")
    amount = txn_amt_to_fen(fields["txnAmt"]) if fields.get("txnAmt") else None
    if not order_id or not code:
        raise ValueError("notification without orderId or respCode")
    if txn_type == TXN_CONSUME:
        status = _orig_status(code, Method.BARCODE)
        wallet = reserved_value(fields, "wallet") or wallet
        result = ChannelResult(
            status, channel_trade_no=fields.get("queryId") or None, amount=amount, wallet=wallet,
            paid_at=_paid_at(fields) if status is TradeStatus.SUCCEEDED else None,
            failure_code=code if status is TradeStatus.FAILED else None,
            failure_message=(msg or None) if status is TradeStatus.FAILED else None)
        return Notification(kind="payment", out_trade_no=from_order_id(order_id), merchant_ref=fields.get("merId"),
                            amount=amount, payment=result, notification_id=fields.get("queryId") or None)
    if txn_type == TXN_REFUND:
        payment = reserved_value(fields, "payment")
        if not payment:
            raise ValueError("refund notification without the payment in reqReserved")
        if code == RESP_OK:
            refund = RefundResult(RefundStatus.SUCCEEDED, channel_refund_no=fields.get("queryId") or None)
        elif code in RESP_UNKNOWN or code == RESP_ACCEPTED:
            refund = RefundResult(RefundStatus.PROCESSING, channel_refund_no=fields.get("queryId") or None)
        else:
            refund = RefundResult(RefundStatus.FAILED, channel_refund_no=fields.get("queryId") or None,
                                  failure_code=code, failure_message=msg or None)
        return Notification(kind="refund", out_trade_no=payment, merchant_ref=fields.get("merId"), amount=amount,
                            out_refund_no=from_order_id(order_id), refund=refund,
                            notification_id=fields.get("queryId") or None)
    raise ValueError(f"unexpected notification txnType {txn_type!r}")


# -- daily statement -----------------------------------------------------------
# A faithful simplification of ACP's file transfer: fileContent is
# Base64(deflate(zip)) as in ACP; the zip holds one transaction file named
# like ACP's "INN<yyMMdd>88ZM_<merId>", one fixed-width line per money
# movement, fields left-justified, separated by one space (amount zero-padded).
FILE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("txnType", 2), ("queryId", 21), ("orderId", 40), ("origQryId", 21), ("origOrderId", 40),
    ("txnAmt", 12), ("txnTime", 14), ("respCode", 2),
)
FILE_LINE_LENGTH = sum(w for _, w in FILE_COLUMNS) + len(FILE_COLUMNS) - 1


def statement_file_name(mer_id: str, day: date) -> str:
    return f"INN{day.strftime('%y%m%d')}88ZM_{mer_id}"


def statement_line(row: Mapping[str, str]) -> str:
    cells = []
    for name, width in FILE_COLUMNS:
        value = row.get(name, "")
        if len(value) > width:
            raise ValueError(f"{name} longer than {width}")
        cells.append(value.rjust(width, "0") if name == "txnAmt" else value.ljust(width))
    return " ".join(cells)


def statement_content(mer_id: str, day: date, rows: list[Mapping[str, str]]) -> tuple[str, str]:
    """(fileName, fileContent) of a day's file as UnionPay serves it."""
    text = "".join(statement_line(r) + "\r\n" for r in rows)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(statement_file_name(mer_id, day), text.encode("utf-8"))
    content = base64.b64encode(zlib.compress(buf.getvalue())).decode("ascii")
    return f"{mer_id}_{day.strftime('%Y%m%d')}.zip", content


def parse_statement_line(line: str) -> Fields:
    if len(line) != FILE_LINE_LENGTH:
        raise ValueError(f"statement line of {len(line)} characters, expected {FILE_LINE_LENGTH}")
    out: Fields = {}
    pos = 0
    for name, width in FILE_COLUMNS:
        out[name] = line[pos:pos + width].strip()
        pos += width + 1
    return out


def parse_statement(file_content: str, mer_id: str, day: date) -> list[StatementLine]:
    """fileContent → statement lines (consumes and refunds that succeeded); other
    transaction kinds in the file (cancels, …) are not money movements we book."""
    try:
        raw = zlib.decompress(base64.b64decode(file_content, validate=True))
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            text = zf.read(statement_file_name(mer_id, day)).decode("utf-8")
    except (zlib.error, zipfile.BadZipFile, KeyError, binascii.Error) as e:
        raise ValueError(f"unreadable statement file: {e}") from None
    lines: list[StatementLine] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        r = parse_statement_line(line)
        if r["respCode"] != RESP_OK:
            continue
        amount = txn_amt_to_fen(r["txnAmt"])
        if r["txnType"] == TXN_CONSUME:
            lines.append(StatementLine("payment", from_order_id(r["orderId"]), r["queryId"] or None, amount,
                                       "SUCCEEDED"))
        elif r["txnType"] == TXN_REFUND:
            lines.append(StatementLine("refund", from_order_id(r["origOrderId"]), r["origQryId"] or None, amount,
                                       "REFUNDED", out_refund_no=from_order_id(r["orderId"])))
    return lines


# -- 云闪付 open platform: the frontToken and the page's upsdk.config ----------------------
# 《云闪付开放平台技术对接文档》 (v3.0): JSON bodies; a server call's ``signature`` is the hex
# SHA-256 of ``k=v&…`` over its fields *and* ``secret``, sorted by name (the secret itself
# is never sent); answers are ``{"resp", "msg", "params"}`` with resp "00" for success.
# ``POST …/frontToken`` {appId, nonceStr, timestamp, signature} → params {frontToken,
# expiresIn (seconds, 7200 today)}: the token behind UPSDK's page configuration, to be
# cached and renewed before it expires (fetches per day are limited). The page then calls
# ``upsdk.config({appId, timestamp, nonceStr, signature, debug})`` whose signature is the
# hex SHA-256 of ``appId=…&frontToken=…&nonceStr=…&timestamp=…&url=…`` (no secret; the
# url is the page's own address); ``upsdk.ready``/``upsdk.error`` say whether the app
# accepted it, and only then does ``upsdk.pay({tn})`` work.
OPEN_API_URL = "https://open.95516.com/open/access/1.0"
FRONT_TOKEN_PATH = "/frontToken"
OPEN_RESP_OK = "00"
#: "the frontToken is invalid or expired": fetch a new one
OPEN_RESP_BAD_FRONT_TOKEN = "a20"
_NONCE_RE = re.compile(r"^[0-9A-Za-z]{1,32}$")
_FRONT_TOKEN_RE = re.compile(r"^[0-9A-Za-z+/=_\-]{1,256}$")


def open_signature(fields: Mapping[str, str]) -> str:
    """The open platform's SHA-256 signature: hex of ``k=v&…`` sorted by field name."""
    return hashlib.sha256("&".join(f"{k}={fields[k]}" for k in sorted(fields)).encode("utf-8")).hexdigest()


def front_token_request(app_id: str, secret: str, nonce: str, timestamp: int) -> dict[str, str]:
    """The JSON body of ``POST …/frontToken``, signed over the fields and the secret."""
    if not _NONCE_RE.match(nonce):
        raise ValueError("nonceStr must be 1-32 letters or digits")
    body = {"appId": app_id, "nonceStr": nonce, "timestamp": str(timestamp)}
    return {**body, "signature": open_signature({**body, "secret": secret})}


def check_front_token_request(body: Mapping[str, object], app_id: str, secret: str) -> str | None:
    """What is wrong with a frontToken request (the provider's side), or None."""
    fields = {k: body.get(k) for k in ("appId", "nonceStr", "timestamp")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        return "missing field"
    if fields["appId"] != app_id:
        return "unknown appId"
    expected = open_signature({**fields, "secret": secret})   # type: ignore[dict-item]
    given = body.get("signature")
    return None if isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode()) \
        else "signature"


def front_token_result(status: int, body: bytes) -> tuple[str, int]:
    """``(frontToken, expiresIn seconds)`` from the answer; ChannelError otherwise (a refusal,
    resp other than 00, is not retriable: the app id or secret is wrong)."""
    if status >= 500:
        raise ChannelError(f"unionpay frontToken: HTTP {status}", retriable=True, kind="http_5xx")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if status != 200 or not isinstance(data, dict):
        raise ChannelError(f"unionpay frontToken: unreadable answer (HTTP {status})", retriable=True,
                           kind="garbage")
    resp = str(data.get("resp", ""))
    if resp != OPEN_RESP_OK:
        raise ChannelError(f"unionpay frontToken: refused ({resp[:16]} {str(data.get('msg', ''))[:80]})",
                           retriable=False, kind="rejected")
    params = data.get("params")
    token = params.get("frontToken") if isinstance(params, dict) else None
    expires = params.get("expiresIn") if isinstance(params, dict) else None
    try:
        expires_in = int(expires)   # type: ignore[arg-type]
    except (TypeError, ValueError):
        expires_in = 0
    if not isinstance(token, str) or not _FRONT_TOKEN_RE.match(token) or expires_in <= 0:
        raise ChannelError("unionpay frontToken: answer without a usable token", retriable=True, kind="garbage")
    return token, expires_in


def upsdk_config(app_id: str, front_token: str, page_url: str, nonce: str, timestamp: int) -> dict[str, object]:
    """What the page hands to ``upsdk.config``: appId, timestamp, nonceStr and the signature
    over them, the frontToken and the page's url (the token and url are not handed over)."""
    if not _NONCE_RE.match(nonce):
        raise ValueError("nonceStr must be 1-32 letters or digits")
    fields = {"appId": app_id, "nonceStr": nonce, "timestamp": str(timestamp)}
    signature = open_signature({**fields, "frontToken": front_token, "url": page_url})
    return {**fields, "signature": signature, "debug": False}


def upsdk_config_valid(config: Mapping[str, object], app_id: str, front_token: str, page_url: str) -> bool:
    """Whether ``config`` is a valid upsdk.config for this app, token and page (the app's side)."""
    fields = {k: config.get(k) for k in ("appId", "nonceStr", "timestamp")}
    if not all(isinstance(v, str) and v for v in fields.values()) or fields["appId"] != app_id:
        return False
    expected = open_signature({**fields, "frontToken": front_token, "url": page_url})   # type: ignore[dict-item]
    given = config.get("signature")
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
