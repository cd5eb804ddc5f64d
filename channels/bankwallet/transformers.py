"""bankwallet: pure mappings between channels.base types and the bank wallet
core's JSON API. No I/O; clocks and nonces come in as arguments.

The wire, as paycore and the wallet core agree on it (the core is the bank's
own system; there is no outside spec):

* Every call is ``POST`` with a JSON body (amounts are int fen, times RFC 3339
  UTC) and the headers ``X-Timestamp`` (unix seconds), ``X-Nonce`` (32 hex
  chars) and ``X-Signature`` = lowercase hex HMAC-SHA256, keyed with the
  merchant secret, over ``timestamp + "\\n" + nonce + "\\n" + body`` (the raw
  body bytes). The core refuses a timestamp more than 300 s away or a nonce
  seen within that window (401). Its answers and notifications carry the same
  three headers over their own body; answers to a request that failed
  authentication (401) are unsigned.
* ``/api/v1/payments`` pay; ``/api/v1/payments/{query,reverse,close}``;
  ``/api/v1/refunds``, ``/api/v1/refunds/query``; ``/api/v1/statements``.
* A payment answers ``200`` with the payment object
  ``{merchant_id, out_trade_no, trade_no, amount, method, status, paid_at,
  qr_code, error_code, error_message, refunded_amount}``; ``status`` is
  ``PENDING | PAYING | SUCCESS | FAILED | CLOSED | REVERSED | REFUNDED``
  (a decline is ``FAILED`` with ``error_code``). A refund answers ``200``
  with ``{out_trade_no, out_refund_no, refund_no, amount, status:
  SUCCESS | PROCESSING | FAILED, error_code, error_message}``.
* Other answers are ``{error_code, error_message}``: 400 INVALID_REQUEST,
  401 INVALID_SIGNATURE / TIMESTAMP_EXPIRED / NONCE_REUSED, 404
  ORDER_NOT_FOUND / REFUND_NOT_FOUND, 409 ORDER_NOT_REVERSIBLE, 500
  SYSTEM_ERROR (outcome unknown: query).
* Notifications: ``{event: "payment" | "refund", notify_id, payment, refund}``
  posted to the request's ``notify_url``, acknowledged ``{"result":"OK"}``;
  duplicates of one event share ``notify_id``.
* Statement: ``/api/v1/statements {merchant_id, date}`` answers a signed
  ``text/csv``: ``type,time,trade_no,out_trade_no,refund_no,out_refund_no,amount,status``.
"""
from __future__ import annotations

import csv
import hmac
import io
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping

import orjson

from channels.bankwallet import common
from channels.formats import csv_text
from channels.base import (by_status, ChannelError, ChannelResult, Method, Notification, PayRequest, RefundRequest,
                           RefundResult, RefundStatus, StatementLine, TradeRef, TradeStatus)

PATHS = {
    "pay": "/api/v1/payments",
    "query": "/api/v1/payments/query",
    "reverse": "/api/v1/payments/reverse",
    "close": "/api/v1/payments/close",
    "refund": "/api/v1/refunds",
    "refund_query": "/api/v1/refunds/query",
    "statement": "/api/v1/statements",
}

TS_HEADER, NONCE_HEADER, SIG_HEADER = "X-Timestamp", "X-Nonce", "X-Signature"
REPLAY_WINDOW = 300

SYSTEM_ERROR = "SYSTEM_ERROR"
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
REFUND_NOT_FOUND = "REFUND_NOT_FOUND"

STATUSES: dict[str, TradeStatus] = by_status(
    TradeStatus, pending="PENDING", processing="PAYING", failed="FAILED", closed="CLOSED", reversed="REVERSED",
    succeeded=("SUCCESS", "REFUNDED"))   # REFUNDED: paid, then (partly) refunded
REFUND_STATUSES: dict[str, RefundStatus] = by_status(
    RefundStatus, succeeded="SUCCESS", processing="PROCESSING", failed="FAILED")
STATEMENT_COLUMNS = ("type", "time", "trade_no", "out_trade_no", "refund_no", "out_refund_no", "amount", "status")


# -- signing ----------------------------------------------------------------

def string_to_sign(timestamp: str, nonce: str, body: bytes) -> bytes:
    return b"%s\n%s\n%s" % (timestamp.encode(), nonce.encode(), body)


def sign(key: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.digest(key, string_to_sign(timestamp, nonce, body), "sha256").hex()


def verify(key: bytes, timestamp: str, nonce: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(key, timestamp, nonce, body), signature.lower())


def signed_headers(key: bytes, timestamp: str, nonce: str, body: bytes, content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, TS_HEADER: timestamp, NONCE_HEADER: nonce,
            SIG_HEADER: sign(key, timestamp, nonce, body)}


def verify_headers(key: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    ts, nonce, sig = headers.get(TS_HEADER), headers.get(NONCE_HEADER), headers.get(SIG_HEADER)
    return bool(ts and nonce and sig) and verify(key, ts, nonce, body, sig)  # type: ignore[arg-type]


def fresh(timestamp: str | None, now: float, window: float = REPLAY_WINDOW) -> bool:
    """The timestamp is a decimal unix time within ``window`` seconds of ``now``."""
    return common.fresh(timestamp, now, window)


# -- encoding and times -------------------------------------------------------

_DUMPS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def encode(obj: Any) -> bytes:
    """The one JSON encoding of a body; datetimes become RFC 3339 (``Z`` for UTC)."""
    return orjson.dumps(obj, option=_DUMPS_OPTIONS)


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# -- requests -----------------------------------------------------------------

def pay_payload(req: PayRequest, merchant_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "merchant_id": merchant_id, "out_trade_no": req.out_trade_no, "amount": req.amount,
        "currency": "CNY", "method": str(req.method), "subject": req.subject, "notify_url": req.notify_url,
        "expire_at": req.expire_at,
    }
    match req.method:
        case Method.BARCODE | Method.SONIC:       # a sonic code is the same payment code, sent by sound
            payload["method"] = "barcode"
            payload["auth_code"] = req.auth_code
        case Method.WALLET:
            payload["user_id"] = (req.payer or {}).get("user_id")
        case Method.QR:
            pass
        case _:
            raise ValueError(f"bankwallet does not support {req.method}")
    for name, value in (("sub_merchant_id", req.sub_mch_id), ("store_id", req.store_id),
                        ("terminal_id", req.terminal_id)):
        if value:
            payload[name] = value
    return payload


def trade_payload(ref: TradeRef, merchant_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"merchant_id": merchant_id, "out_trade_no": ref.out_trade_no}
    if ref.sub_mch_id:
        payload["sub_merchant_id"] = ref.sub_mch_id
    return payload


def refund_payload(req: RefundRequest, merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "out_trade_no": req.out_trade_no, "out_refund_no": req.out_refund_no,
            "amount": req.refund_amount, "reason": req.reason or "", "notify_url": req.notify_url}


def refund_query_payload(req: RefundRequest, merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "out_refund_no": req.out_refund_no}


def statement_payload(day: date, merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "date": day.isoformat()}


# -- answers ------------------------------------------------------------------

def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def payment_result(d: Mapping[str, Any]) -> ChannelResult:
    """A payment object (answer or notification) → ChannelResult."""
    status = STATUSES.get(d.get("status"))  # type: ignore[arg-type]
    if status is None:
        raise ChannelError(f"bankwallet: unknown payment status {d.get('status')!r}", retriable=True,
                           kind="garbage")
    return ChannelResult(
        status=status, channel_trade_no=d.get("trade_no") or None,
        failure_code=(d.get("error_code") or "FAILED") if status is TradeStatus.FAILED else d.get("error_code"),
        failure_message=d.get("error_message") or None, qr_code=d.get("qr_code") or None,
        paid_at=parse_time(d.get("paid_at")) if status is TradeStatus.SUCCEEDED else None,
        amount=_int(d.get("amount")))


def refund_result(d: Mapping[str, Any]) -> RefundResult:
    status = REFUND_STATUSES.get(d.get("status"))  # type: ignore[arg-type]
    if status is None:
        raise ChannelError(f"bankwallet: unknown refund status {d.get('status')!r}", retriable=True,
                           kind="garbage")
    return RefundResult(status=status, channel_refund_no=d.get("refund_no") or None,
                        failure_code=d.get("error_code") or ("FAILED" if status is RefundStatus.FAILED else None),
                        failure_message=d.get("error_message") or None)


def notification(d: Any) -> Notification:
    """A verified notification body → Notification (ValueError if it is not one)."""
    if not isinstance(d, dict):
        raise ValueError("notification is not a JSON object")
    event, payment = d.get("event"), d.get("payment")
    if event not in ("payment", "refund") or not isinstance(payment, dict) or not payment.get("out_trade_no"):
        raise ValueError("not a bankwallet notification")
    note = Notification(kind=event, out_trade_no=payment["out_trade_no"], merchant_ref=payment.get("merchant_id"),
                        amount=_int(payment.get("amount")), payment=payment_result(payment),
                        notification_id=d.get("notify_id") or None)
    if event == "refund":
        refund = d.get("refund")
        if not isinstance(refund, dict) or not refund.get("out_refund_no"):
            raise ValueError("refund notification without refund")
        note.out_refund_no = refund["out_refund_no"]
        note.refund = refund_result(refund)
        note.amount = _int(refund.get("amount"))
    return note


# -- statement ----------------------------------------------------------------

def statement_csv(rows: Iterable[Iterable[Any]]) -> str:
    return csv_text(STATEMENT_COLUMNS, rows)


def parse_statement(text: str) -> list[StatementLine]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != STATEMENT_COLUMNS:
        raise ValueError(f"unexpected statement header {reader.fieldnames}")
    lines = []
    for row in reader:
        kind = row["type"]
        if kind not in ("payment", "refund") or not row["amount"].isdigit():
            raise ValueError(f"bad statement row {row}")
        refund = kind == "refund"
        status = "REFUNDED" if refund else ("REVERSED" if row["status"] == "REVERSED" else "SUCCEEDED")
        lines.append(StatementLine(kind=kind, out_trade_no=row["out_trade_no"],
                                   channel_trade_no=row["trade_no"] or None, amount=int(row["amount"]),
                                   status=status, out_refund_no=row["out_refund_no"] or None if refund else None))
    return lines
