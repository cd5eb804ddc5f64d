"""e-CNY acquirer profile: pure mappings between channels.base types and the
acquiring bank's e-CNY gateway (JSON + SHA256withRSA). No I/O; keys, clocks
and nonces come in as arguments.

The PBOC publishes no direct merchant API: merchants accept e-CNY through an
acquiring bank (收单机构), whose gateway this models. The profile (one bank's
style, modelled on the acquirer gateways that serve e-CNY codes):

* ``POST /api/v1/ecny/<verb>``, body ``{"req_time": "yyyyMMddHHmmss",
  "version": "1.0", "req_data": {…}}``; amounts are yuan strings (``"12.34"``),
  times Beijing time ``yyyyMMddHHmmss``.
* Request signing: header ``Authorization: ECNY-SHA256withRSA appid="…",
  serial_no="…",timestamp="…",nonce_str="…",signature="…"``; ``signature`` =
  base64 SHA256withRSA (PKCS#1 v1.5) with the merchant's key over
  ``appid\\nserial_no\\ntimestamp\\nnonce_str\\nbody\\n``.
* Answers ``{"code", "msg", "resp_time", "resp_data"}`` carry ``Ecny-Appid``,
  ``Ecny-Serial-No``, ``Ecny-Timestamp``, ``Ecny-Nonce``, ``Ecny-Signature``
  over the same five lines, signed with the acquirer's key. Notifications are
  requests from the acquirer with the same ``Authorization`` header (its own
  serial), acknowledged ``{"code":"SUCCESS","message":"执行成功"}``.
* Codes: see :data:`CODES`. ``trade_state``: WAIT_PAY, PAYING, SUCCESS, FAIL,
  CLOSED, REVOKED, REFUND; ``refund_state``: SUCCESS, PROCESSING, FAIL.
* The daily bill is ``resp_data.content``: ``|``-separated lines
  ``PAY|REFUND|time|trade_no|out_trade_no|refund_no|out_refund_no|amount|state``
  and a last line ``TOTAL|count|paid|refunded``.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.bankwallet import common
from channels.money import fen_to_yuan, yuan_to_fen
from channels.base import (by_status, ChannelError, ChannelResult, Method, Notification, PayRequest, RefundRequest,
                           RefundResult, RefundStatus, StatementLine, TradeRef, TradeStatus)

CST = timezone(timedelta(hours=8))
SCHEMA = "ECNY-SHA256withRSA"
VERSION = "1.0"
ANSWER_HEADERS = ("Ecny-Appid", "Ecny-Serial-No", "Ecny-Timestamp", "Ecny-Nonce", "Ecny-Signature")
REPLAY_WINDOW = 300

PATHS = {
    "micropay": "/api/v1/ecny/trade/micropay",
    "preorder": "/api/v1/ecny/trade/preorder",
    "query": "/api/v1/ecny/trade/query",
    "close": "/api/v1/ecny/trade/close",
    "revoke": "/api/v1/ecny/trade/revoke",
    "refund": "/api/v1/ecny/trade/refund",
    "refund_query": "/api/v1/ecny/trade/refund_query",
    "bill": "/api/v1/ecny/bill/download",
}

OK = "000000"
SYSTEM_BUSY = "000001"
SIGN_ERROR = "000002"
PARAM_ERROR = "000003"
ORDER_NOT_EXIST = "100001"
ORDER_STATE_ERROR = "100003"
REFUND_NOT_EXIST = "300004"
#: the profile's answer codes
CODES: dict[str, str] = {
    OK: "成功",
    SYSTEM_BUSY: "系统繁忙，结果未知，请查询",
    SIGN_ERROR: "验签失败",
    PARAM_ERROR: "参数错误",
    ORDER_NOT_EXIST: "订单不存在",
    "100002": "商户订单号重复",
    ORDER_STATE_ERROR: "订单状态不允许此操作",
    "200001": "钱包余额不足",
    "200002": "付款码无效或已过期",
    "200003": "钱包已冻结",
    "300001": "该订单不允许退款",
    "300002": "退款金额超过可退金额",
    "300003": "订单未支付，不能退款",
    REFUND_NOT_EXIST: "退款单不存在",
}

TRADE_STATES: dict[str, TradeStatus] = by_status(
    TradeStatus, pending="WAIT_PAY", processing="PAYING", failed="FAIL", closed="CLOSED", reversed="REVOKED",
    succeeded=("SUCCESS", "REFUND"))   # REFUND: paid, then (partly) refunded
REFUND_STATES: dict[str, RefundStatus] = by_status(
    RefundStatus, succeeded="SUCCESS", processing="PROCESSING", failed="FAIL")


# -- signing ----------------------------------------------------------------

def message(appid: str, serial_no: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return b"%s\n%s\n%s\n%s\n%s\n" % (appid.encode(), serial_no.encode(), timestamp.encode(), nonce.encode(), body)


def rsa_sign(key: rsa.RSAPrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def authorization(appid: str, serial_no: str, timestamp: str, nonce: str, signature: str) -> str:
    return (f'{SCHEMA} appid="{appid}",serial_no="{serial_no}",timestamp="{timestamp}",'
            f'nonce_str="{nonce}",signature="{signature}"')


_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_authorization(value: str | None) -> dict[str, str] | None:
    """The five parameters of an ``Authorization`` header, or None."""
    if not value or not value.startswith(SCHEMA + " "):
        return None
    params = dict(_AUTH_PARAM.findall(value[len(SCHEMA) + 1:]))
    if not all(params.get(k) for k in ("appid", "serial_no", "timestamp", "nonce_str", "signature")):
        return None
    return params


def verify_authorization(key: rsa.RSAPublicKey, params: Mapping[str, str], body: bytes) -> bool:
    data = message(params["appid"], params["serial_no"], params["timestamp"], params["nonce_str"], body)
    return rsa_verify(key, data, params["signature"])


def answer_headers(key: rsa.RSAPrivateKey, appid: str, serial_no: str, timestamp: str, nonce: str,
                   body: bytes) -> dict[str, str]:
    sig = rsa_sign(key, message(appid, serial_no, timestamp, nonce, body))
    return dict(zip(ANSWER_HEADERS, (appid, serial_no, timestamp, nonce, sig)))


def verify_answer(key: rsa.RSAPublicKey, headers: Mapping[str, str], body: bytes) -> bool:
    values = [headers.get(h) for h in ANSWER_HEADERS]
    if not all(values):
        return False
    appid, serial, ts, nonce, sig = values  # type: ignore[misc]
    return rsa_verify(key, message(appid, serial, ts, nonce, body), sig)


def fresh(timestamp: str | None, now: float, window: float = REPLAY_WINDOW) -> bool:
    return common.fresh(timestamp, now, window)


# -- times ------------------------------------------------------------------

def ecny_time(dt: datetime) -> str:
    return dt.astimezone(CST).strftime("%Y%m%d%H%M%S")


def parse_ecny_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=CST)
    except ValueError:
        return None


# -- requests -----------------------------------------------------------------

def envelope(req_data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {"req_time": ecny_time(now), "version": VERSION, "req_data": req_data}


def pay_data(req: PayRequest, merchant_no: str) -> tuple[str, dict[str, Any]]:
    """(verb, req_data): ``micropay`` for barcode (the customer's e-CNY
    payment code in ``auth_code``), ``preorder`` for qr (→ ``code_url``)."""
    data: dict[str, Any] = {
        "merchant_no": merchant_no, "out_trade_no": req.out_trade_no, "total_amount": fen_to_yuan(req.amount),
        "subject": req.subject, "notify_url": req.notify_url, "expire_time": ecny_time(req.expire_at),
    }
    for name, value in (("sub_merchant_no", req.sub_mch_id), ("store_no", req.store_id),
                        ("term_no", req.terminal_id)):
        if value:
            data[name] = value
    match req.method:
        case Method.BARCODE | Method.SONIC:       # a sonic code is the same payment code, sent by sound
            data["auth_code"] = req.auth_code
            return "micropay", data
        case Method.QR:
            return "preorder", data
        case _:
            raise ValueError(f"ecny does not support {req.method}")


def trade_data(ref: TradeRef, merchant_no: str) -> dict[str, Any]:
    data: dict[str, Any] = {"merchant_no": merchant_no, "out_trade_no": ref.out_trade_no}
    if ref.channel_trade_no:
        data["trade_no"] = ref.channel_trade_no
    return data


def refund_data(req: RefundRequest, merchant_no: str) -> dict[str, Any]:
    data: dict[str, Any] = {"merchant_no": merchant_no, "out_trade_no": req.out_trade_no,
                            "out_refund_no": req.out_refund_no, "refund_amount": fen_to_yuan(req.refund_amount),
                            "notify_url": req.notify_url}
    if req.channel_trade_no:
        data["trade_no"] = req.channel_trade_no
    if req.reason:
        data["reason"] = req.reason
    return data


def refund_query_data(req: RefundRequest, merchant_no: str) -> dict[str, Any]:
    return {"merchant_no": merchant_no, "out_refund_no": req.out_refund_no}


def bill_data(day: date, merchant_no: str) -> dict[str, Any]:
    return {"merchant_no": merchant_no, "bill_date": day.strftime("%Y%m%d")}


# -- answers ------------------------------------------------------------------

def _amount(value: Any) -> int | None:
    try:
        return yuan_to_fen(value) if isinstance(value, str) else None
    except ValueError:
        return None


def trade_from(d: Mapping[str, Any]) -> ChannelResult:
    """A trade object (``resp_data`` or a notification) → ChannelResult."""
    state = d.get("trade_state")
    status = TRADE_STATES.get(state)  # type: ignore[arg-type]
    if status is None:
        raise ChannelError(f"ecny: unknown trade_state {state!r}", retriable=True, kind="garbage")
    return ChannelResult(
        status=status, channel_trade_no=d.get("trade_no") or None,
        failure_code=(d.get("fail_code") or "FAIL") if status is TradeStatus.FAILED else None,
        failure_message=d.get("fail_msg") or None, qr_code=d.get("code_url") or None,
        paid_at=parse_ecny_time(d.get("pay_time")) if status is TradeStatus.SUCCEEDED else None,
        amount=_amount(d.get("total_amount")))


def _data(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    data = answer.get("resp_data")
    return data if isinstance(data, dict) else {}


def _unknown(answer: Mapping[str, Any], flow: str) -> ChannelError:
    return ChannelError(f"ecny {flow}: {answer.get('code')} {answer.get('msg', '')}".rstrip(), retriable=True,
                        kind="system_error")


def _refused(answer: Mapping[str, Any], flow: str) -> ChannelError:
    return ChannelError(f"ecny {flow}: refused {answer.get('code')} {answer.get('msg', '')}".rstrip(),
                        retriable=False, kind="rejected")


def pay_result(answer: Mapping[str, Any]) -> ChannelResult:
    """micropay / preorder. A decline is any code but OK, SYSTEM_BUSY and the
    request-level refusals (signature, parameters), which raise."""
    code = answer.get("code")
    if code == OK:
        return trade_from(_data(answer))
    if code == SYSTEM_BUSY:
        raise _unknown(answer, "pay")
    if code in (SIGN_ERROR, PARAM_ERROR) or not isinstance(code, str):
        raise _refused(answer, "pay")
    data = _data(answer)
    return ChannelResult(status=TradeStatus.FAILED, channel_trade_no=data.get("trade_no") or None,
                         failure_code=code, failure_message=answer.get("msg") or None)


def trade_result(answer: Mapping[str, Any], flow: str) -> ChannelResult:
    """query / close / revoke: the trade as it stands. Close and revoke answer
    the trade's real state when they cannot act (e.g. close of a paid order)."""
    code = answer.get("code")
    if code == OK:
        return trade_from(_data(answer))
    if code == ORDER_NOT_EXIST:
        return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code)
    if code == SYSTEM_BUSY:
        if flow == "reverse":
            return ChannelResult(status=TradeStatus.PROCESSING, retry=True, failure_code=code)
        raise _unknown(answer, flow)
    raise _refused(answer, flow)


def refund_result(answer: Mapping[str, Any], flow: str = "refund") -> RefundResult:
    code = answer.get("code")
    if code == OK:
        data = _data(answer)
        status = REFUND_STATES.get(data.get("refund_state"))  # type: ignore[arg-type]
        if status is None:
            raise ChannelError(f"ecny {flow}: unknown refund_state", retriable=True, kind="garbage")
        return RefundResult(status=status, channel_refund_no=data.get("refund_no") or None,
                            failure_code=(data.get("fail_code") or "FAIL") if status is RefundStatus.FAILED else None)
    if code == SYSTEM_BUSY:
        raise _unknown(answer, flow)
    if code in (SIGN_ERROR, PARAM_ERROR) or not isinstance(code, str):
        raise _refused(answer, flow)
    return RefundResult(status=RefundStatus.FAILED, failure_code=code, failure_message=answer.get("msg") or None)


def notification(d: Any) -> Notification:
    """A verified notification body → Notification; ValueError when it is not one."""
    if not isinstance(d, dict) or d.get("notify_type") not in ("trade", "refund") or not d.get("out_trade_no"):
        raise ValueError("not an e-CNY acquirer notification")
    note = Notification(kind="payment", out_trade_no=d["out_trade_no"], merchant_ref=d.get("merchant_no"),
                        amount=_amount(d.get("total_amount")), notification_id=d.get("notify_id") or None)
    if d["notify_type"] == "trade":
        note.payment = trade_from(d)
        return note
    state = REFUND_STATES.get(d.get("refund_state"))  # type: ignore[arg-type]
    if state is None or not d.get("out_refund_no"):
        raise ValueError("refund notification without refund")
    note.kind, note.out_refund_no, note.amount = "refund", d["out_refund_no"], _amount(d.get("refund_amount"))
    note.refund = RefundResult(status=state, channel_refund_no=d.get("refund_no") or None)
    return note


# -- bill ---------------------------------------------------------------------

BILL_KINDS = {"PAY": "payment", "REFUND": "refund"}


def bill_content(rows: Iterable[tuple[str, str, str, str, str, str, int, str]]) -> str:
    """Write the daily bill: ``kind|time|trade_no|out_trade_no|refund_no|out_refund_no|amount|state``
    lines (amount in fen here, yuan in the file) and the TOTAL line."""
    lines, count, paid, refunded = [], 0, 0, 0
    for kind, when, trade_no, out_trade_no, refund_no, out_refund_no, amount, state in rows:
        lines.append("|".join((kind, when, trade_no, out_trade_no, refund_no, out_refund_no,
                               fen_to_yuan(amount), state)))
        count += 1
        if kind == "PAY":
            paid += amount
        else:
            refunded += amount
    lines.append(f"TOTAL|{count}|{fen_to_yuan(paid)}|{fen_to_yuan(refunded)}")
    return "\n".join(lines) + "\n"


def parse_bill(content: str) -> list[StatementLine]:
    """Parse the bill; the TOTAL line must agree with the rows."""
    out: list[StatementLine] = []
    total: list[str] | None = None
    for raw in content.splitlines():
        if not raw.strip():
            continue
        f = raw.split("|")
        if f[0] == "TOTAL" and len(f) == 4:
            total = f
            continue
        if len(f) != 8 or f[0] not in BILL_KINDS:
            raise ValueError(f"bad bill line {raw!r}")
        kind = BILL_KINDS[f[0]]
        status = "REFUNDED" if kind == "refund" else ("REVERSED" if f[7] == "REVOKED" else "SUCCEEDED")
        out.append(StatementLine(kind=kind, out_trade_no=f[3], channel_trade_no=f[2] or None,
                                 amount=yuan_to_fen(f[6]), status=status,
                                 out_refund_no=(f[5] or None) if kind == "refund" else None))
    if total is None or int(total[1]) != len(out):
        raise ValueError("bill total missing or wrong")
    if yuan_to_fen(total[2]) != sum(l.amount for l in out if l.kind == "payment"):
        raise ValueError("bill total amount disagrees")
    return out
