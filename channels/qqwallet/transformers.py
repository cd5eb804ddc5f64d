"""QQ Wallet (qpay) v2: pure mappings between channels.base types and the
XML wire format. No I/O; nonces and clocks come in as arguments.

Signing (qpay 商户签名算法, the same as WeChat Pay v2): every parameter but
``sign`` with a non-empty value, sorted by name, joined ``k=v`` with ``&``,
then ``&key=<API key>`` appended; MD5 or HMAC-SHA256 (keyed with the API key)
of that, in uppercase hex.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Mapping
from xml.sax.saxutils import escape

from channels.formats import xml_root
from channels.money import yuan_to_fen
from channels.base import (by_status, ChannelError, ChannelResult, Method, Notification, PayRequest, RefundRequest, RefundResult,
                           RefundStatus, StatementLine, TradeRef, TradeStatus)

#: endpoint of each call, relative to qpay.qq.com (or api.qpay.qq.com for API_HOST_CALLS)
PATHS = {
    "micropay": "/cgi-bin/pay/qpay_micro_pay.cgi",
    "unified_order": "/cgi-bin/pay/qpay_unified_order.cgi",
    "order_query": "/cgi-bin/pay/qpay_order_query.cgi",
    "close_order": "/cgi-bin/pay/qpay_close_order.cgi",
    "reverse": "/cgi-bin/pay/qpay_reverse.cgi",
    "refund": "/cgi-bin/pay/qpay_refund.cgi",
    "refund_query": "/cgi-bin/pay/qpay_refund_query.cgi",
    "statement": "/cgi-bin/sp_download/qpay_mch_statement_down.cgi",
}
#: the calls qpay serves on api.qpay.qq.com
API_HOST_CALLS = frozenset({"reverse", "refund"})

SIGN_MD5 = "MD5"
SIGN_HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (SIGN_MD5, SIGN_HMAC_SHA256)

#: qpay times are Beijing time, yyyyMMddHHmmss
CST = timezone(timedelta(hours=8))

#: err_code values after which the outcome is unknown and the order must be queried
UNKNOWN_CODES = frozenset({"SYSTEMERROR", "BANKERROR"})
USERPAYING = "USERPAYING"

TRADE_STATES: dict[str, TradeStatus] = by_status(
    TradeStatus, pending="NOTPAY", processing="USERPAYING", failed="PAYERROR", closed="CLOSED", reversed="REVOKED",
    succeeded=("SUCCESS", "REFUND"))   # REFUND: paid, then (partly) refunded

REFUND_STATES: dict[str, RefundStatus] = by_status(
    RefundStatus, succeeded="SUCCESS", processing=("PROCESSING", "NOTSURE"),   # NOTSURE: submit again, same number
    failed=("FAIL", "CHANGE"))   # CHANGE: the refund to the original account failed; needs manual handling

TRADE_TYPES: dict[Method, str] = {Method.BARCODE: "MICROPAY", Method.QR: "NATIVE", Method.JSAPI: "JSAPI"}

#: the daily statement (qpay_mch_statement_down.cgi, bill_type=ALL). qpay's
#: file follows WeChat v2's: a header row, rows whose fields start with a
#: backtick, then a totals header and a totals row; amounts in yuan.
STATEMENT_COLUMNS: tuple[str, ...] = (
    "交易时间", "公众账号ID", "商户号", "子商户号", "设备号", "QQ钱包订单号", "商户订单号", "用户标识",
    "交易类型", "交易状态", "付款银行", "货币种类", "总金额", "代金券或立减优惠金额", "QQ钱包退款单号",
    "商户退款单号", "退款金额", "代金券或立减优惠退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
    "手续费", "费率",
)
STATEMENT_TOTALS = ("总交易单数", "总交易额", "总退款金额", "总代金券或立减优惠退款金额", "手续费总金额")
NO_BILL = "No Bill Exist"


# -- signing ----------------------------------------------------------------

def string_to_sign(params: Mapping[str, str], key: str) -> str:
    body = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] not in ("", None))
    return f"{body}&key={key}"


def sign(params: Mapping[str, str], key: str, sign_type: str = SIGN_MD5) -> str:
    data = string_to_sign(params, key).encode()
    if sign_type == SIGN_MD5:
        return hashlib.md5(data).hexdigest().upper()
    if sign_type == SIGN_HMAC_SHA256:
        return hmac.new(key.encode(), data, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown qpay sign_type {sign_type!r}")


def verify(params: Mapping[str, str], key: str, sign_type: str = SIGN_MD5) -> bool:
    given = params.get("sign") or ""
    return hmac.compare_digest(sign(params, key, sign_type), given.upper())


def signed(params: Mapping[str, str | int | None], key: str, sign_type: str, nonce: str) -> dict[str, str]:
    """Drop empty values, add ``nonce_str`` (and ``sign_type`` when not MD5), sign."""
    out = {k: str(v) for k, v in params.items() if v not in ("", None)}
    out["nonce_str"] = nonce
    if sign_type != SIGN_MD5:
        out["sign_type"] = sign_type
    out["sign"] = sign(out, key, sign_type)
    return out


# -- XML ----------------------------------------------------------------------

def to_xml(params: Mapping[str, str]) -> bytes:
    return ("<xml>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in params.items()) + "</xml>").encode()


def parse_xml(body: bytes) -> dict[str, str]:
    """A flat ``<xml><k>v</k>…</xml>`` document → dict. Raises ValueError on
    anything else; DTDs are refused outright (no entity expansion)."""
    root = xml_root(body, "xml")
    return {child.tag: (child.text or "").strip() for child in root}


# -- ids and times ------------------------------------------------------------

_PAYCORE_ID = re.compile(r"(pay|rfd)_([0-9a-z]{24})")
_STRIPPED_ID = re.compile(r"(pay|rfd)([0-9a-z]{24})")


def to_qpay_no(no: str, strip_underscore: bool) -> str:
    """paycore id → qpay out_trade_no / out_refund_no. With ``strip_underscore``
    ``pay_<24>`` becomes ``pay<24>`` (for a charset without ``_``)."""
    if strip_underscore and _PAYCORE_ID.fullmatch(no):
        return no.replace("_", "", 1)
    return no


def from_qpay_no(no: str, strip_underscore: bool) -> str:
    if strip_underscore:
        m = _STRIPPED_ID.fullmatch(no)
        if m:
            return f"{m.group(1)}_{m.group(2)}"
    return no


def qpay_time(dt: datetime) -> str:
    return dt.astimezone(CST).strftime("%Y%m%d%H%M%S")


def parse_qpay_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=CST)
    except ValueError:
        return None


def parse_fen(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


# -- requests -----------------------------------------------------------------

def pay_params(req: PayRequest, *, mch_id: str, appid: str, strip_underscore: bool) -> dict[str, str | None]:
    """qpay_micro_pay.cgi (barcode) or qpay_unified_order.cgi (qr → NATIVE,
    jsapi → JSAPI) parameters, unsigned."""
    params: dict[str, str | None] = {
        "appid": appid, "mch_id": mch_id, "sub_mch_id": req.sub_mch_id, "body": req.subject[:128],
        "out_trade_no": to_qpay_no(req.out_trade_no, strip_underscore), "fee_type": "CNY",
        "total_fee": str(req.amount), "spbill_create_ip": req.client_ip, "device_info": req.terminal_id,
        "notify_url": req.notify_url,
    }
    match req.method:
        case Method.BARCODE | Method.SONIC:       # a sonic code is the same payment code, sent by sound
            params["auth_code"] = req.auth_code
        case Method.QR | Method.JSAPI:
            params["trade_type"] = TRADE_TYPES[req.method]
            params["time_start"] = qpay_time(req.created_at) if req.created_at else None
            params["time_expire"] = qpay_time(req.expire_at)
        case _:
            raise ValueError(f"qqwallet does not support {req.method}")
    return params


def trade_params(ref: TradeRef, *, mch_id: str, appid: str, strip_underscore: bool) -> dict[str, str | None]:
    """Order query / close / reverse: the order named by out_trade_no."""
    return {"appid": appid, "mch_id": mch_id, "sub_mch_id": ref.sub_mch_id,
            "out_trade_no": to_qpay_no(ref.out_trade_no, strip_underscore)}


def refund_params(req: RefundRequest, *, mch_id: str, appid: str, strip_underscore: bool,
                  op_user_id: str, op_user_passwd: str) -> dict[str, str | None]:
    return {"appid": appid, "mch_id": mch_id, "sub_mch_id": req.sub_mch_id,
            "transaction_id": req.channel_trade_no,
            "out_trade_no": to_qpay_no(req.out_trade_no, strip_underscore),
            "out_refund_no": to_qpay_no(req.out_refund_no, strip_underscore),
            "refund_fee": str(req.refund_amount), "op_user_id": op_user_id, "op_user_passwd": op_user_passwd}


def refund_query_params(req: RefundRequest, *, mch_id: str, appid: str,
                        strip_underscore: bool) -> dict[str, str | None]:
    return {"appid": appid, "mch_id": mch_id, "sub_mch_id": req.sub_mch_id,
            "out_refund_no": to_qpay_no(req.out_refund_no, strip_underscore)}


def statement_params(day: date, *, mch_id: str, appid: str) -> dict[str, str | None]:
    return {"appid": appid, "mch_id": mch_id, "bill_date": day.strftime("%Y%m%d"), "bill_type": "ALL"}


# -- answers ------------------------------------------------------------------

def _declined(d: Mapping[str, str], status: TradeStatus = TradeStatus.FAILED) -> ChannelResult:
    return ChannelResult(status=status, channel_trade_no=d.get("transaction_id") or None,
                         failure_code=d.get("err_code") or "FAIL", failure_message=d.get("err_code_des") or None)


def _system_error(d: Mapping[str, str], flow: str) -> ChannelError:
    return ChannelError(f"qqwallet {flow}: {d.get('err_code')} {d.get('err_code_des', '')}".rstrip(),
                        retriable=True, kind="system_error")


def trade_result(d: Mapping[str, str]) -> ChannelResult:
    """A verified answer or notification naming a ``trade_state``."""
    state = d.get("trade_state") or "SUCCESS"
    status = TRADE_STATES.get(state)
    if status is None:
        raise ChannelError(f"qqwallet: unknown trade_state {state!r}", retriable=True, kind="garbage")
    paid = status is TradeStatus.SUCCEEDED
    return ChannelResult(
        status=status, channel_trade_no=d.get("transaction_id") or None,
        failure_code=state if status is TradeStatus.FAILED else None,
        failure_message=d.get("trade_state_desc") or None,
        paid_at=parse_qpay_time(d.get("time_end")) if paid else None,
        amount=parse_fen(d.get("total_fee")))


def micropay_result(d: Mapping[str, str]) -> ChannelResult:
    """qpay_micro_pay.cgi: paid, user paying (an err_code or a trade_state),
    unknown (SYSTEMERROR/BANKERROR → query), or declined."""
    if d.get("result_code") == "SUCCESS":
        return trade_result(d)
    code = d.get("err_code", "")
    if code == USERPAYING:
        return _declined(d, TradeStatus.PROCESSING)
    if code in UNKNOWN_CODES:
        raise _system_error(d, "pay")
    return _declined(d)


def unified_order_result(d: Mapping[str, str], method: Method, pub_acc: str = "") -> ChannelResult:
    """qpay_unified_order.cgi: NATIVE → code_url; JSAPI → prepay_id, handed to
    the QQ JS API as ``mqq.tenpay.pay({tokenId: prepay_id, pubAcc, pubAccHint})``."""
    if d.get("result_code") != "SUCCESS":
        if d.get("err_code") in UNKNOWN_CODES:
            raise _system_error(d, "pay")
        return _declined(d)
    prepay_id = d.get("prepay_id", "")
    if method is Method.QR:
        if not d.get("code_url"):
            raise ChannelError("qqwallet pay: no code_url", retriable=True, kind="garbage")
        return ChannelResult(status=TradeStatus.PENDING, qr_code=d["code_url"])
    if not prepay_id:
        raise ChannelError("qqwallet pay: no prepay_id", retriable=True, kind="garbage")
    params = {"tokenId": prepay_id, "appId": d.get("appid", "")}
    if pub_acc:
        params.update(pubAcc=pub_acc, pubAccHint="")
    return ChannelResult(status=TradeStatus.PENDING, pay_params=params)


def query_result(d: Mapping[str, str]) -> ChannelResult:
    if d.get("result_code") == "SUCCESS":
        return trade_result(d)
    code = d.get("err_code", "")
    if code == "ORDERNOTEXIST":
        return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code)
    raise _system_error(d, "query")


def reverse_result(d: Mapping[str, str]) -> ChannelResult:
    """qpay_reverse.cgi: ``recall=Y`` (or SYSTEMERROR/USERPAYING) asks to call again."""
    if d.get("result_code") == "SUCCESS":
        if d.get("recall") == "Y":
            return ChannelResult(status=TradeStatus.PROCESSING, retry=True)
        return ChannelResult(status=TradeStatus.REVERSED, channel_trade_no=d.get("transaction_id") or None)
    code = d.get("err_code", "")
    if code in UNKNOWN_CODES or code == USERPAYING or d.get("recall") == "Y":
        return ChannelResult(status=TradeStatus.PROCESSING, retry=True, failure_code=code)
    if code == "ORDERNOTEXIST":
        return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code)
    raise ChannelError(f"qqwallet reverse refused: {code} {d.get('err_code_des', '')}".rstrip(),
                       retriable=False, kind="rejected")


def close_result(d: Mapping[str, str]) -> ChannelResult:
    """qpay_close_order.cgi: CLOSED, or the real state when it cannot be closed."""
    if d.get("result_code") == "SUCCESS":
        return ChannelResult(status=TradeStatus.CLOSED)
    code = d.get("err_code", "")
    match code:
        case "ORDERPAID":
            return ChannelResult(status=TradeStatus.SUCCEEDED, failure_code=code)
        case "ORDERCLOSED":
            return ChannelResult(status=TradeStatus.CLOSED)
        case "ORDERREVERSED":
            return ChannelResult(status=TradeStatus.REVERSED)
        case "ORDERNOTEXIST":
            return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code)
    raise _system_error(d, "close")


def refund_result(d: Mapping[str, str]) -> RefundResult:
    """qpay_refund.cgi: SUCCESS means the refund was *accepted*; its outcome
    comes from qpay_refund_query.cgi (PROCESSING until then)."""
    if d.get("result_code") == "SUCCESS":
        return RefundResult(status=RefundStatus.PROCESSING, channel_refund_no=d.get("refund_id") or None)
    if d.get("err_code") in UNKNOWN_CODES:
        raise _system_error(d, "refund")
    return RefundResult(status=RefundStatus.FAILED, failure_code=d.get("err_code") or "FAIL",
                        failure_message=d.get("err_code_des") or None)


def refund_query_result(d: Mapping[str, str], out_refund_no: str) -> RefundResult:
    """qpay_refund_query.cgi lists refunds as ``out_refund_no_$n``,
    ``refund_id_$n``, ``refund_status_$n``; pick ours."""
    if d.get("result_code") != "SUCCESS":
        code = d.get("err_code", "")
        if code == "REFUNDNOTEXIST":
            return RefundResult(status=RefundStatus.FAILED, failure_code=code)
        raise _system_error(d, "refund_query")
    count = parse_fen(d.get("refund_count")) or 0
    for n in range(count):
        if d.get(f"out_refund_no_{n}") == out_refund_no:
            state = d.get(f"refund_status_{n}", "")
            status = REFUND_STATES.get(state)
            if status is None:
                raise ChannelError(f"qqwallet: unknown refund_status {state!r}", retriable=True, kind="garbage")
            return RefundResult(status=status, channel_refund_no=d.get(f"refund_id_{n}") or None,
                                failure_code=state if status is RefundStatus.FAILED else None)
    return RefundResult(status=RefundStatus.FAILED, failure_code="REFUNDNOTEXIST")


def payment_notification(d: Mapping[str, str], *, strip_underscore: bool) -> Notification:
    """A verified payment notification (qpay posts one per paid order to
    notify_url; it has no notification id of its own)."""
    if not d.get("out_trade_no") or not d.get("trade_state") and not d.get("total_fee"):
        raise ValueError("notification names no order")
    return Notification(kind="payment", out_trade_no=from_qpay_no(d["out_trade_no"], strip_underscore),
                        merchant_ref=d.get("mch_id") or None, amount=parse_fen(d.get("total_fee")),
                        payment=trade_result(d))


def ack_xml(ok: bool, message: str = "") -> bytes:
    if ok:
        return b"<xml><return_code>SUCCESS</return_code></xml>"
    return to_xml({"return_code": "FAIL", "return_msg": message or "FAIL"})


# -- statement ----------------------------------------------------------------

def statement_csv(header: Iterable[str], rows: Iterable[Iterable[str]], totals: Iterable[str]) -> str:
    """Write a statement file the qpay way (every data field prefixed with a backtick)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["`" + v for v in row])
    w.writerow(STATEMENT_TOTALS)
    w.writerow(["`" + v for v in totals])
    return buf.getvalue()


def parse_statement(text: str, *, strip_underscore: bool) -> list[StatementLine]:
    """Parse the statement file; columns are found by their header name.

    A row with 交易状态 REFUND is a refund of 退款金额; REVOKED a reversed
    payment; anything else a payment of 总金额. Stops at the totals header.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise ValueError("empty statement")
    col = {name.strip(): i for i, name in enumerate(header)}
    need = ("QQ钱包订单号", "商户订单号", "交易状态", "总金额", "商户退款单号", "退款金额")
    missing = [n for n in need if n not in col]
    if missing:
        raise ValueError(f"statement lacks columns {missing}")
    lines: list[StatementLine] = []
    for raw in reader:
        if not raw or raw[0].strip() == STATEMENT_TOTALS[0]:
            break
        row = [v.strip().lstrip("`") for v in raw]
        state = row[col["交易状态"]]
        out_trade_no = from_qpay_no(row[col["商户订单号"]], strip_underscore)
        channel_no = row[col["QQ钱包订单号"]] or None
        if state == "REFUND":
            lines.append(StatementLine(
                kind="refund", out_trade_no=out_trade_no, channel_trade_no=channel_no,
                amount=yuan_to_fen(row[col["退款金额"]]), status="REFUNDED",
                out_refund_no=from_qpay_no(row[col["商户退款单号"]], strip_underscore)))
        else:
            lines.append(StatementLine(
                kind="payment", out_trade_no=out_trade_no, channel_trade_no=channel_no,
                amount=yuan_to_fen(row[col["总金额"]]),
                status="REVERSED" if state == "REVOKED" else "SUCCEEDED"))
    return lines

