"""Bestpay (翼支付, webpaywg.bestpay.com.cn) barcode API wire format: pure mappings, no I/O.

Requests are form posts; each carries ``mac`` = upper-case hex MD5 over a
*fixed-order* ``NAME=value&…&KEY=<merchant key>`` string (upper-case names,
values as sent, empty values kept). The orders, from Bestpay's barcode API
document as public SDKs implement it:

* placeOrder: ``MERCHANTID, ORDERNO, ORDERREQNO, ORDERDATE, BARCODE, ORDERAMT, KEY``
* queryOrder: ``MERCHANTID, ORDERNO, ORDERREQNO, ORDERDATE, KEY``
* commonRefund: ``MERCHANTID, MERCHANTPWD, OLDORDERNO, OLDORDERREQNO, REFUNDREQNO,
  REFUNDREQDATE, TRANSAMT, LEDGERDETAIL, KEY``
* reverse: ``MERCHANTID, MERCHANTPWD, OLDORDERNO, OLDORDERREQNO, REFUNDREQNO,
  REFUNDREQDATE, TRANSAMT, KEY``

Amounts (``orderAmt``, ``productAmt``, ``transAmt``) are integer fen in the
barcode API. Times are China time (UTC+8): ``orderDate`` yyyyMMddHHmmss,
``refundReqDate`` yyyyMMdd.

Answers are JSON ``{"success": bool, "result": {...}, "errorCode": str,
"errorMsg": str}``. Choices where Bestpay's documents are not public
(*unconfirmed*, tables in :class:`BestpayCodes`, overridable from
settings.extra):

* ``result.sign`` (encodeType 1 = MD5) is checked as upper MD5 of
  ``MERCHANTID, ORDERNO, ORDERREQNO, OURTRANSNO, TRANSAMT, TRANSSTATUS, KEY``
  (pay/query) and ``OLDORDERNO, REFUNDREQNO, TRANSAMT, KEY`` (refund/reverse);
  ``success=false`` answers carry no result and are unsigned.
* ``transStatus``: A processing (user paying), B success, C failed, D reversed.
* errorCode: ``SYSTEM_ERROR``/``TIME_OUT`` → unknown, query; ``MAC_ERROR`` →
  our mac was refused; ``ORDER_NOT_EXIST`` → not found; the rest are
  declines (``BALANCE_NOT_ENOUGH``, ``REFUND_REFUSED``…).
* Notifications: a form post to ``backUrl``/``bgUrl`` (fields below) with
  ``SIGN`` = upper MD5 over the fixed order given in :data:`PAY_NOTIFY_MAC` /
  :data:`REFUND_NOTIFY_MAC`; acknowledged with the plain text ``SUCCESS``.
* Statement: a pipe-separated text file, see :func:`parse_statement`.

Order numbers: Bestpay takes letters and digits only, at most 30, and an
*even* length when the order may be refunded by barcode refund. paycore's
``pay_<24>``/``rfd_<24>`` become ``payX<24>``/``rfdX<24>`` (28 characters):
paycore ids are lower-case, so the upper-case ``X`` maps back unambiguously.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl

import orjson

from channels.base import (
    ChannelResult, Notification, PayRequest, RefundRequest, RefundResult, RefundStatus, StatementLine,
    TradeRef, TradeStatus,
)

CST = timezone(timedelta(hours=8))
CHANNEL = "05"
BUSI_TYPE = "0000001"
ENCODE_TYPE_MD5 = "1"

# transStatus (*unconfirmed* beyond A/B/C)
TS_PROCESSING, TS_SUCCESS, TS_FAILED, TS_REVERSED = "A", "B", "C", "D"

# errorCode values (*unconfirmed*)
ERR_SYSTEM = "SYSTEM_ERROR"
ERR_TIMEOUT = "TIME_OUT"
ERR_MAC = "MAC_ERROR"
ERR_NOT_FOUND = "ORDER_NOT_EXIST"
ERR_DECLINED = "BALANCE_NOT_ENOUGH"
ERR_REFUND_REFUSED = "REFUND_REFUSED"
ERR_PARAM = "PARAM_ERROR"

PLACE_ORDER_MAC = ("MERCHANTID", "ORDERNO", "ORDERREQNO", "ORDERDATE", "BARCODE", "ORDERAMT")
QUERY_MAC = ("MERCHANTID", "ORDERNO", "ORDERREQNO", "ORDERDATE")
REFUND_MAC = ("MERCHANTID", "MERCHANTPWD", "OLDORDERNO", "OLDORDERREQNO", "REFUNDREQNO", "REFUNDREQDATE",
              "TRANSAMT", "LEDGERDETAIL")
REVERSE_MAC = ("MERCHANTID", "MERCHANTPWD", "OLDORDERNO", "OLDORDERREQNO", "REFUNDREQNO", "REFUNDREQDATE",
               "TRANSAMT")
STATEMENT_MAC = ("MERCHANTID", "FILEDATE")
TRADE_SIGN = ("MERCHANTID", "ORDERNO", "ORDERREQNO", "OURTRANSNO", "TRANSAMT", "TRANSSTATUS")
REFUND_SIGN = ("OLDORDERNO", "REFUNDREQNO", "TRANSAMT")
PAY_NOTIFY_MAC = ("UPTRANSEQ", "MERCHANTID", "ORDERSEQ", "ORDERREQTRANSEQ", "ORDERAMOUNT", "RETNCODE", "TRANDATE")
REFUND_NOTIFY_MAC = ("MERCHANTID", "OLDORDERNO", "REFUNDREQNO", "TRANSAMT", "TRANSSTATUS")

NOTIFY_OK = "0000"   # RETNCODE of a successful payment


@dataclass(frozen=True, slots=True)
class BestpayCodes:
    """Status and error tables. settings.extra keys: ``trans_status_map`` ({"E": "CLOSED"}),
    ``system_error_codes``, ``mac_error_codes``, ``not_found_codes``, ``user_paying_codes``."""

    status_map: Mapping[str, TradeStatus]
    system_error_codes: frozenset[str] = frozenset({ERR_SYSTEM, ERR_TIMEOUT})
    mac_error_codes: frozenset[str] = frozenset({ERR_MAC})
    not_found_codes: frozenset[str] = frozenset({ERR_NOT_FOUND})
    user_paying_codes: frozenset[str] = frozenset()

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> "BestpayCodes":
        status = {TS_PROCESSING: TradeStatus.PROCESSING, TS_SUCCESS: TradeStatus.SUCCEEDED,
                  TS_FAILED: TradeStatus.FAILED, TS_REVERSED: TradeStatus.REVERSED}
        status.update({str(k): TradeStatus(v) for k, v in (extra.get("trans_status_map") or {}).items()})
        d = cls(status)

        def codes(key: str, default: frozenset[str]) -> frozenset[str]:
            v = extra.get(key)
            return default if v is None else frozenset(str(c) for c in v)

        return cls(status, codes("system_error_codes", d.system_error_codes),
                   codes("mac_error_codes", d.mac_error_codes), codes("not_found_codes", d.not_found_codes),
                   codes("user_paying_codes", d.user_paying_codes))


# -- mac ----------------------------------------------------------------------
def mac_source(order: Sequence[str], values: Mapping[str, str], key: str) -> str:
    """``NAME=value&…&KEY=key`` in the fixed order; a missing value is sent empty."""
    return "&".join(f"{n}={values.get(n, '')}" for n in order) + f"&KEY={key}"


def mac(order: Sequence[str], values: Mapping[str, str], key: str) -> str:
    return hashlib.md5(mac_source(order, values, key).encode("utf-8")).hexdigest().upper()


def mac_ok(order: Sequence[str], values: Mapping[str, str], key: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(mac(order, values, key), str(given).upper())


def upper_keys(d: Mapping[str, Any]) -> dict[str, str]:
    return {k.upper(): "" if v is None else str(v) for k, v in d.items()}


# -- money, time, ids ---------------------------------------------------------
def fen_to_wire(amount: int) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a positive int of fen, got {amount!r}")
    return str(amount)


def wire_to_fen(value: Any) -> int | None:
    """``"1234"`` or 1234 → 1234; None/"" → None; signs, decimals and the like are rejected."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an amount in fen: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative amount: {value!r}")
        return value
    text = str(value)
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not an amount in fen: {value!r}")
    return int(text)


def order_date(t: datetime | None) -> str:
    t = t or datetime.now(timezone.utc)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(CST).strftime("%Y%m%d%H%M%S")


def day_text(t: datetime | date) -> str:
    if isinstance(t, datetime):
        t = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(CST).date()
    return t.strftime("%Y%m%d")


_PAYCORE_ID = re.compile(r"^([a-z]{3})_([0-9a-z]+)$")
_WIRE_ID = re.compile(r"^([a-z]{3})X([0-9a-z]+)$")


def to_order_no(paycore_id: str) -> str:
    m = _PAYCORE_ID.match(paycore_id)
    if not m:
        raise ValueError(f"not a paycore id: {paycore_id!r}")
    wire = f"{m.group(1)}X{m.group(2)}"
    if len(wire) > 30 or len(wire) % 2:
        raise ValueError(f"{paycore_id!r} maps to {wire!r}: Bestpay wants an even length of at most 30")
    return wire


def from_order_no(order_no: str) -> str:
    m = _WIRE_ID.match(order_no)
    if not m:
        raise ValueError(f"not an order number paycore issued: {order_no!r}")
    return f"{m.group(1)}_{m.group(2)}"


def reverse_req_no(out_trade_no: str) -> str:
    """The reverse's refundReqNo: fixed per payment, so a repeated reverse is the same request."""
    return "rev" + to_order_no(out_trade_no)[3:]


# -- requests -----------------------------------------------------------------
def place_order_form(req: PayRequest, merchant_id: str, key: str, now: datetime, store_id: str) -> dict[str, str]:
    assert req.auth_code, "barcode needs the payment code"
    no = to_order_no(req.out_trade_no)
    form = {
        "merchantId": merchant_id, "subMerchantId": req.sub_mch_id or "", "barcode": req.auth_code,
        "orderNo": no, "orderReqNo": no, "channel": CHANNEL, "busiType": BUSI_TYPE,
        "orderDate": order_date(now), "orderAmt": fen_to_wire(req.amount), "productAmt": fen_to_wire(req.amount),
        "attachAmt": "0", "goodsName": req.subject, "storeId": req.store_id or store_id,
        "backUrl": req.notify_url, "mchntTmNum": req.terminal_id or "",
    }
    form["mac"] = mac(PLACE_ORDER_MAC, upper_keys(form), key)
    return {k: v for k, v in form.items() if v != ""}


def query_form(ref: TradeRef, merchant_id: str, key: str) -> dict[str, str]:
    no = to_order_no(ref.out_trade_no)
    form = {"merchantId": merchant_id, "orderNo": no, "orderReqNo": no, "orderDate": order_date(ref.created_at)}
    form["mac"] = mac(QUERY_MAC, upper_keys(form), key)
    return form


def refund_form(req: RefundRequest, merchant_id: str, merchant_pwd: str, key: str, now: datetime,
                ) -> dict[str, str]:
    no = to_order_no(req.out_trade_no)
    form = {
        "merchantId": merchant_id, "subMerchantId": req.sub_mch_id or "", "merchantPwd": merchant_pwd,
        "oldOrderNo": no, "oldOrderReqNo": no, "refundReqNo": to_order_no(req.out_refund_no),
        "refundReqDate": day_text(now), "transAmt": fen_to_wire(req.refund_amount), "ledgerDetail": "",
        "channel": CHANNEL, "bgUrl": req.notify_url,
    }
    form["mac"] = mac(REFUND_MAC, upper_keys(form), key)
    return {k: v for k, v in form.items() if v != ""}


def reverse_form(ref: TradeRef, merchant_id: str, merchant_pwd: str, key: str, now: datetime) -> dict[str, str]:
    no = to_order_no(ref.out_trade_no)
    form = {
        "merchantId": merchant_id, "subMerchantId": ref.sub_mch_id or "", "merchantPwd": merchant_pwd,
        "oldOrderNo": no, "oldOrderReqNo": no, "refundReqNo": reverse_req_no(ref.out_trade_no),
        "refundReqDate": day_text(now), "transAmt": fen_to_wire(ref.amount), "channel": CHANNEL,
    }
    form["mac"] = mac(REVERSE_MAC, upper_keys(form), key)
    return {k: v for k, v in form.items() if v != ""}


def statement_form(merchant_id: str, key: str, day: date) -> dict[str, str]:
    form = {"merchantId": merchant_id, "fileDate": day.strftime("%Y%m%d")}
    form["mac"] = mac(STATEMENT_MAC, upper_keys(form), key)
    return form


# -- answers ------------------------------------------------------------------
@dataclass(slots=True)
class Answer:
    success: bool
    result: dict[str, Any]
    error_code: str | None
    error_msg: str | None


def parse_answer(body: bytes) -> Answer:
    """ValueError unless the body is Bestpay's ``{success, result, errorCode, errorMsg}``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
        raise ValueError("not a Bestpay answer")
    result = data.get("result")
    result = {} if result is None else result
    if not isinstance(result, dict):
        raise ValueError("result is not an object")
    return Answer(data["success"], result, data.get("errorCode") or None, data.get("errorMsg") or None)


def trade_sign_ok(result: Mapping[str, Any], key: str) -> bool:
    return mac_ok(TRADE_SIGN, upper_keys(result), key, result.get("sign"))


def refund_sign_ok(result: Mapping[str, Any], key: str) -> bool:
    return mac_ok(REFUND_SIGN, upper_keys(result), key, result.get("sign"))


def trade_result(ans: Answer, codes: BestpayCodes) -> ChannelResult:
    """A placeOrder/queryOrder answer (already checked for system and mac errors)."""
    if not ans.success:
        code = ans.error_code or "UNKNOWN"
        if code in codes.user_paying_codes:
            return ChannelResult(TradeStatus.PROCESSING)
        if code in codes.not_found_codes:
            return ChannelResult(TradeStatus.NOT_FOUND, failure_code=code, failure_message=ans.error_msg)
        return ChannelResult(TradeStatus.FAILED, failure_code=code, failure_message=ans.error_msg)
    r = ans.result
    ts = str(r.get("transStatus") or "")
    status = codes.status_map.get(ts)
    if status is None:
        raise ValueError(f"unknown Bestpay transStatus {ts!r}")
    failed = status is TradeStatus.FAILED
    return ChannelResult(status, channel_trade_no=r.get("ourTransNo") or None, amount=wire_to_fen(r.get("transAmt")),
                         failure_code=(ans.error_code or f"TRANS_STATUS_{ts}") if failed else None,
                         failure_message=ans.error_msg if failed else None)


def refund_result(ans: Answer) -> RefundResult:
    """commonRefund answers carry no status: success means the refund was made (*unconfirmed*)."""
    if not ans.success:
        return RefundResult(RefundStatus.FAILED, failure_code=ans.error_code or "UNKNOWN",
                            failure_message=ans.error_msg)
    return RefundResult(RefundStatus.SUCCEEDED, channel_refund_no=ans.result.get("ourTransNo") or None)


# -- notifications ------------------------------------------------------------
def parse_form(body: bytes) -> dict[str, str]:
    text = body.decode("utf-8")
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"field {k} given twice")
        out[k] = v
    return out


def payment_notification(form: Mapping[str, str]) -> Notification:
    """A verified payment notification form → Notification (ValueError if incomplete)."""
    for k in ("UPTRANSEQ", "ORDERSEQ", "ORDERAMOUNT", "RETNCODE"):
        if not form.get(k):
            raise ValueError(f"payment notification without {k}")
    ok = form["RETNCODE"] == NOTIFY_OK
    amount = wire_to_fen(form["ORDERAMOUNT"])
    result = ChannelResult(TradeStatus.SUCCEEDED if ok else TradeStatus.FAILED, channel_trade_no=form["UPTRANSEQ"],
                           amount=amount, failure_code=None if ok else form["RETNCODE"],
                           failure_message=None if ok else form.get("RETNINFO") or None)
    return Notification(kind="payment", out_trade_no=from_order_no(form["ORDERSEQ"]),
                        merchant_ref=form.get("MERCHANTID") or None, amount=amount, payment=result,
                        notification_id=form["UPTRANSEQ"])


def refund_notification(form: Mapping[str, str]) -> Notification:
    for k in ("OLDORDERNO", "REFUNDREQNO", "TRANSAMT", "TRANSSTATUS"):
        if not form.get(k):
            raise ValueError(f"refund notification without {k}")
    ok = form["TRANSSTATUS"] == TS_SUCCESS
    refund = RefundResult(RefundStatus.SUCCEEDED if ok else RefundStatus.FAILED,
                          channel_refund_no=form.get("OURTRANSNO") or None,
                          failure_code=None if ok else f"TRANS_STATUS_{form['TRANSSTATUS']}")
    return Notification(kind="refund", out_trade_no=from_order_no(form["OLDORDERNO"]),
                        merchant_ref=form.get("MERCHANTID") or None, amount=wire_to_fen(form["TRANSAMT"]),
                        out_refund_no=from_order_no(form["REFUNDREQNO"]), refund=refund,
                        notification_id=f"{form['REFUNDREQNO']}:{form['TRANSSTATUS']}")


# -- statement ----------------------------------------------------------------
STATEMENT_HEADER = "merchantId|fileDate|count|payAmt|refundAmt"
STATEMENT_COLUMNS = "transType|orderNo|orderReqNo|ourTransNo|refundReqNo|transAmt|transDate|transStatus"
TRANS_TYPE_PAY, TRANS_TYPE_REFUND = "01", "02"


def statement_text(merchant_id: str, day: str, rows: Sequence[Sequence[str]]) -> str:
    """The daily file (*unconfirmed* layout): a summary line, the column line, one line per movement."""
    pay = sum(int(r[5]) for r in rows if r[0] == TRANS_TYPE_PAY)
    refund = sum(int(r[5]) for r in rows if r[0] == TRANS_TYPE_REFUND)
    lines = [f"{merchant_id}|{day}|{len(rows)}|{pay}|{refund}", STATEMENT_COLUMNS]
    lines += ["|".join(r) for r in rows]
    return "\n".join(lines) + "\n"


def parse_statement(text: str) -> list[StatementLine]:
    """Parse :func:`statement_text`'s layout, checking the summary's count and totals."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or lines[1] != STATEMENT_COLUMNS:
        raise ValueError("not a Bestpay statement file")
    head = lines[0].split("|")
    if len(head) != 5:
        raise ValueError("bad statement summary line")
    out: list[StatementLine] = []
    totals = {TRANS_TYPE_PAY: 0, TRANS_TYPE_REFUND: 0}
    for ln in lines[2:]:
        f = ln.split("|")
        if len(f) != 8:
            raise ValueError(f"bad statement line {ln!r}")
        amount = wire_to_fen(f[5])
        if amount is None or f[0] not in totals:
            raise ValueError(f"bad statement line {ln!r}")
        totals[f[0]] += amount
        if f[7] != TS_SUCCESS:
            continue
        if f[0] == TRANS_TYPE_PAY:
            out.append(StatementLine("payment", from_order_no(f[1]), f[3] or None, amount, "SUCCEEDED"))
        else:
            out.append(StatementLine("refund", from_order_no(f[1]), f[3] or None, amount, "REFUNDED",
                                     out_refund_no=from_order_no(f[4])))
    if int(head[2]) != len(lines) - 2 or int(head[3]) != totals[TRANS_TYPE_PAY] \
            or int(head[4]) != totals[TRANS_TYPE_REFUND]:
        raise ValueError("statement summary does not match its lines")
    return out
