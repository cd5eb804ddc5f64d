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
* Profit sharing: ``/api/v1/receivers {merchant_id, account, name?}`` binds a
  wallet account as a receiver (``200 {account, status: BOUND}``; 404
  ACCOUNT_NOT_FOUND). ``/api/v1/splits {merchant_id, out_trade_no, out_split_no,
  receivers: [{account, amount, description}], finish}`` and ``/api/v1/splits/query
  {merchant_id, out_split_no}`` answer the split object ``{out_split_no, split_no,
  out_trade_no, status: PROCESSING | SUCCESS | FAILED, receivers: [{account, amount,
  status, error_code}], error_code, error_message}``; a decline is ``FAILED`` with
  ``error_code`` (INSUFFICIENT_SHAREABLE, RECEIVER_NOT_BOUND, ORDER_NOT_PAID,
  SPLIT_FINISHED); an unknown split is 404 SPLIT_NOT_FOUND. ``finish`` releases the
  rest to the merchant; no receivers and ``finish`` only releases.
* Payouts: ``/api/v1/payouts {merchant_id, out_payout_no, amount, account, name?,
  remark, notify_url}`` and ``/api/v1/payouts/query {merchant_id, out_payout_no}``
  answer ``{out_payout_no, payout_no, amount, account, status: PROCESSING | SUCCESS |
  FAILED | RETURNED, error_code, error_message}`` (a decline: ``FAILED`` with
  ACCOUNT_FROZEN, NAME_MISMATCH, INSUFFICIENT_BALANCE…; 404 PAYOUT_NOT_FOUND). The
  name, when given, is checked against the account. A final payout is notified
  ``{event: "payout", notify_id, payout}`` to its notify_url.
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
from channels.transfers import (LineResult, PayoutNotice, PayoutRequest, PayoutResult, PayoutStatus, ReceiverSpec,
                                ShareRequest, ShareResult, ShareStatus)
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
    "receiver_bind": "/api/v1/receivers",
    "split": "/api/v1/splits",
    "split_query": "/api/v1/splits/query",
    "payout": "/api/v1/payouts",
    "payout_query": "/api/v1/payouts/query",
}

TS_HEADER, NONCE_HEADER, SIG_HEADER = "X-Timestamp", "X-Nonce", "X-Signature"
REPLAY_WINDOW = 300

SYSTEM_ERROR = "SYSTEM_ERROR"
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
REFUND_NOT_FOUND = "REFUND_NOT_FOUND"
SPLIT_NOT_FOUND = "SPLIT_NOT_FOUND"
PAYOUT_NOT_FOUND = "PAYOUT_NOT_FOUND"

STATUSES: dict[str, TradeStatus] = by_status(
    TradeStatus, pending="PENDING", processing="PAYING", failed="FAILED", closed="CLOSED", reversed="REVERSED",
    succeeded=("SUCCESS", "REFUNDED"))   # REFUNDED: paid, then (partly) refunded
REFUND_STATUSES: dict[str, RefundStatus] = by_status(
    RefundStatus, succeeded="SUCCESS", processing="PROCESSING", failed="FAILED")
SPLIT_STATUSES: dict[str, ShareStatus] = by_status(
    ShareStatus, processing="PROCESSING", succeeded="SUCCESS", failed="FAILED")
PAYOUT_STATUSES: dict[str, PayoutStatus] = by_status(
    PayoutStatus, processing="PROCESSING", succeeded="SUCCESS", failed="FAILED", returned="RETURNED")
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


# -- profit sharing and payouts ----------------------------------------------------

def bind_payload(spec: ReceiverSpec, merchant_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"merchant_id": merchant_id, "account": spec.account}
    if spec.name:
        payload["name"] = spec.name
    return payload


def split_payload(req: ShareRequest, merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "out_trade_no": req.out_trade_no, "out_split_no": req.out_order_no,
            "receivers": [{"account": line.account, "amount": line.amount, "description": line.description}
                          for line in req.lines], "finish": req.finish}


def split_query_payload(req: ShareRequest, merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "out_split_no": req.out_order_no}


def split_result(d: Mapping[str, Any]) -> ShareResult:
    """A split object → ShareResult (a 404 SPLIT_NOT_FOUND answer → NOT_FOUND)."""
    if d.get("error_code") == SPLIT_NOT_FOUND and "status" not in d:
        return ShareResult(ShareStatus.NOT_FOUND, failure_code=SPLIT_NOT_FOUND)
    status = SPLIT_STATUSES.get(d.get("status"))  # type: ignore[arg-type]
    receivers = d.get("receivers") or []
    if status is None or not isinstance(receivers, list):
        raise ChannelError(f"bankwallet: unknown split status {d.get('status')!r}", retriable=True, kind="garbage")
    lines = []
    for r in receivers:
        line_status = SPLIT_STATUSES.get(r.get("status")) if isinstance(r, dict) else None
        if line_status is None or _int(r.get("amount")) is None:
            raise ChannelError("bankwallet: split receiver without status or amount", retriable=True, kind="garbage")
        lines.append(LineResult(account=str(r.get("account", "")), amount=r["amount"], status=line_status,
                                failure_code=r.get("error_code") or None))
    return ShareResult(status, channel_order_no=d.get("split_no") or None, lines=lines,
                       failure_code=(d.get("error_code") or "FAILED") if status is ShareStatus.FAILED else None,
                       failure_message=d.get("error_message") or None)


def payout_payload(req: PayoutRequest, merchant_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"merchant_id": merchant_id, "out_payout_no": req.out_no, "amount": req.amount,
                               "currency": "CNY", "account": req.account, "remark": req.remark,
                               "notify_url": req.notify_url}
    if req.name:
        payload["name"] = req.name
    return payload


def payout_query_payload(req: PayoutRequest, merchant_id: str) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "out_payout_no": req.out_no}


def payout_result(d: Mapping[str, Any]) -> PayoutResult:
    """A payout object → PayoutResult (a 404 PAYOUT_NOT_FOUND answer → NOT_FOUND)."""
    if d.get("error_code") == PAYOUT_NOT_FOUND and "status" not in d:
        return PayoutResult(PayoutStatus.NOT_FOUND, failure_code=PAYOUT_NOT_FOUND)
    status = PAYOUT_STATUSES.get(d.get("status"))  # type: ignore[arg-type]
    if status is None:
        raise ChannelError(f"bankwallet: unknown payout status {d.get('status')!r}", retriable=True, kind="garbage")
    failed = status in (PayoutStatus.FAILED, PayoutStatus.RETURNED)
    return PayoutResult(status, channel_payout_no=d.get("payout_no") or None,
                        failure_code=(d.get("error_code") or str(d["status"])) if failed else None,
                        failure_message=(d.get("error_message") or None) if failed else None)


def payout_notification(d: Any) -> PayoutNotice:
    """A verified payout notification body → PayoutNotice (ValueError if it is not one)."""
    payout = d.get("payout") if isinstance(d, dict) else None
    if not isinstance(d, dict) or d.get("event") != "payout" or not isinstance(payout, dict) \
            or not payout.get("out_payout_no"):
        raise ValueError("not a bankwallet payout notification")
    try:
        result = payout_result(payout)
    except ChannelError as e:
        raise ValueError(str(e)) from None
    return PayoutNotice(out_no=str(payout["out_payout_no"]), merchant_ref=payout.get("merchant_id"),
                        amount=_int(payout.get("amount")), result=result, notification_id=d.get("notify_id") or None)
