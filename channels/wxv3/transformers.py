"""Pure mappings between ``channels.base`` types and WeChat-v3-style JSON.

Everything a provider varies is in its :class:`V3Profile`; the functions take
it as their first argument where it matters. No I/O happens here: signing is
passed in as a callable where a mapping needs a signature (client pay
parameters), so the adapter keeps the keys.

Money on the wire is ``int`` fen in ``amount: {total, currency}``; yuan
strings appear only in the daily trade bill (:func:`yuan_to_fen`).
Paycore's ids (``pay_…``, ``rfd_…``, 28 characters) already fit
``out_trade_no``/``out_refund_no`` (6–32 of ``[0-9A-Za-z_-|*@]``), so they
travel unchanged; :func:`wire_out_no` only checks them.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import orjson

from channels import money
from channels.base import (by_status, 
    ChannelError, ChannelResult, Method, Notification, NotificationRejected, PayRequest, RefundRequest,
    RefundResult, RefundStatus, StatementLine, TradeRef, TradeStatus,
)

#: the providers' own clock: China Standard Time, no DST
CST = timezone(timedelta(hours=8), "CST")

#: error ``code``s that mean "outcome unknown, query" rather than a decline
UNKNOWN_OUTCOME_CODES = frozenset({"SYSTEMERROR", "SYSTEM_ERROR", "BANKERROR"})
#: error ``code``s that mean "the customer is confirming" (codepay, sometimes an error, sometimes trade_state)
USERPAYING_CODES = frozenset({"USERPAYING"})
#: close on a paid order
ORDER_PAID_CODES = frozenset({"ORDERPAID", "ORDER_PAID"})
NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS", "NOT_FOUND"})

#: trade_state → normalised status. REFUND means paid, then (partly) refunded.
TRADE_STATES: Mapping[str, TradeStatus] = by_status(
    TradeStatus, pending="NOTPAY", failed="PAYERROR", closed="CLOSED", reversed="REVOKED",
    succeeded=("SUCCESS", "REFUND"), processing=("USERPAYING", "ACCEPTED"))   # ACCEPTED (codepay): debit pending

#: refund status → normalised; ABNORMAL (the refund could not be credited) and CLOSED move no money
REFUND_STATES: Mapping[str, RefundStatus] = by_status(
    RefundStatus, succeeded="SUCCESS", processing="PROCESSING", failed=("CLOSED", "ABNORMAL"))


@dataclass(frozen=True, slots=True)
class V3Profile:
    """The wire facts of one WeChat-v3-style provider."""

    name: str
    auth_scheme: str                      # WECHATPAY2-SHA256-RSA2048 | DouyinPay-RSA
    auth_fields: tuple[str, ...]          # Authorization parameters in the documented order
    header_prefix: str                    # Wechatpay → Wechatpay-Signature, -Timestamp, -Nonce, -Serial
    pay_prefix: str                       # /v3/pay/transactions
    partner_prefix: str | None            # service-provider mode, None where the provider has none known
    refund_path: str
    bill_path: str
    segments: tuple[tuple[Method, str], ...]  # method → order endpoint under pay_prefix
    app_package: str                      # the app SDK's fixed ``package``
    jsapi_sign_type: str                  # ``signType`` of the JSAPI client parameters

    def header(self, what: str) -> str:
        return f"{self.header_prefix}-{what}"

    def segment(self, method: Method) -> str | None:
        return dict(self.segments).get(method)

    @property
    def methods(self) -> frozenset[Method]:
        return frozenset(m for m, _ in self.segments)


@dataclass(frozen=True, slots=True)
class V3Ids:
    """Who is asking: a direct merchant, or a service provider for a sub-merchant."""

    mchid: str
    appid: str
    sub_mchid: str | None = None
    sub_appid: str | None = None

    @property
    def partner(self) -> bool:
        return bool(self.sub_mchid)


# -- money, ids, time -----------------------------------------------------------

_OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")


def fen_to_yuan(fen: int) -> str:
    """12345 → "123.45", -5 → "-0.05" (:func:`channels.money.fen_to_yuan`)."""
    return money.fen_to_yuan(fen, allow_negative=True)


def yuan_to_fen(yuan: str) -> int:
    """ "123.45" → 12345; "1" → 100; " 0.5 " → 50; "-0.01" → -1. More than two decimals is an error, never rounded."""
    return money.yuan_to_fen(yuan, allow_negative=True, padded=True)


def wire_out_no(no: str) -> str:
    """A merchant order/refund number as the provider accepts it (paycore ids pass unchanged)."""
    if not _OUT_NO.match(no):
        raise ValueError(f"{no!r} is not a valid out_trade_no/out_refund_no")
    return no


def rfc3339(dt: datetime) -> str:
    """``2024-05-01T12:00:00+08:00`` – the providers' time format."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(CST).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _garbage(what: str) -> ChannelError:
    return ChannelError(f"unexpected provider answer: {what}", retriable=True, kind="garbage")


def _amount(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _garbage(f"{what} is not an integer")
    return value


# -- status mapping --------------------------------------------------------------

def trade_status(state: str) -> TradeStatus:
    try:
        return TRADE_STATES[state]
    except KeyError:
        raise _garbage(f"unknown trade_state {state!r}") from None


def refund_status(status: str) -> RefundStatus:
    try:
        return REFUND_STATES[status]
    except KeyError:
        raise _garbage(f"unknown refund status {status!r}") from None


def error_code(data: Mapping[str, Any]) -> tuple[str, str]:
    """(code, message) of an error answer ``{"code": …, "message": …}``."""
    return str(data.get("code") or ""), str(data.get("message") or "")


def raise_if_unknown_outcome(data: Mapping[str, Any]) -> None:
    code, message = error_code(data)
    if code in UNKNOWN_OUTCOME_CODES:
        raise ChannelError(f"{code}: {message}", retriable=True, kind="system_error")


# -- ids in bodies and paths ---------------------------------------------------

def merchant_fields(ids: V3Ids, *, with_app: bool = True) -> dict[str, str]:
    """``{appid, mchid}``, or ``{sp_appid, sp_mchid, sub_mchid[, sub_appid]}`` in service-provider mode."""
    if ids.partner:
        out = {"sp_mchid": ids.mchid, "sub_mchid": str(ids.sub_mchid)}
        if with_app:
            out["sp_appid"] = ids.appid
            if ids.sub_appid:
                out["sub_appid"] = ids.sub_appid
        return out
    return {"appid": ids.appid, "mchid": ids.mchid} if with_app else {"mchid": ids.mchid}


def pay_prefix_for(profile: V3Profile, ids: V3Ids) -> str:
    """The transactions prefix: direct, or service-provider (``/partner/``) mode."""
    if not ids.partner:
        return profile.pay_prefix
    if profile.partner_prefix is None:
        raise ChannelError(f"{profile.name}: service-provider mode (sub_mch_id) is not supported",
                           retriable=False, kind="unsupported")
    return profile.partner_prefix


def _merchant_query(ids: V3Ids) -> str:
    return f"sp_mchid={ids.mchid}&sub_mchid={ids.sub_mchid}" if ids.partner else f"mchid={ids.mchid}"


def order_path(profile: V3Profile, method: Method, ids: V3Ids) -> str:
    seg = profile.segment(method)
    if seg is None:
        raise ValueError(f"{profile.name} has no {method} order endpoint")
    return f"{pay_prefix_for(profile, ids)}/{seg}"


def query_path(profile: V3Profile, out_trade_no: str, ids: V3Ids) -> str:
    return f"{pay_prefix_for(profile, ids)}/out-trade-no/{wire_out_no(out_trade_no)}?{_merchant_query(ids)}"


def close_path(profile: V3Profile, out_trade_no: str, ids: V3Ids) -> str:
    return f"{pay_prefix_for(profile, ids)}/out-trade-no/{wire_out_no(out_trade_no)}/close"


def close_body(ids: V3Ids) -> dict[str, str]:
    return merchant_fields(ids, with_app=False)


def refund_query_path(profile: V3Profile, out_refund_no: str, ids: V3Ids) -> str:
    path = f"{profile.refund_path}/{wire_out_no(out_refund_no)}"
    return f"{path}?sub_mchid={ids.sub_mchid}" if ids.partner else path


def bill_path(profile: V3Profile, day: date, ids: V3Ids) -> str:
    path = f"{profile.bill_path}?bill_date={day.isoformat()}&bill_type=ALL"
    return f"{path}&sub_mchid={ids.sub_mchid}" if ids.partner else path


# -- ordering ------------------------------------------------------------------

def _payer(req: PayRequest, ids: V3Ids) -> dict[str, str]:
    """``payer`` for JSAPI: ``openid`` (direct) or ``sp_openid`` / ``sub_openid`` (service provider)."""
    p = dict(req.payer or {})
    if ids.partner:
        if p.get("sub_openid"):
            return {"sub_openid": p["sub_openid"]}
        return {"sp_openid": p.get("sp_openid") or p.get("openid", "")}
    return {"openid": p.get("openid", "")}


def common_order_fields(req: PayRequest, ids: V3Ids) -> dict[str, Any]:
    """Fields every order endpoint takes (codepay included)."""
    body: dict[str, Any] = {
        **merchant_fields(ids),
        "description": req.subject[:127],
        "out_trade_no": wire_out_no(req.out_trade_no),
        "amount": {"total": req.amount, "currency": "CNY"},
    }
    if req.profit_sharing:
        # 分账: the provider holds the funds until they are shared or released
        body["settle_info"] = {"profit_sharing": True}
    return body


def order_body(req: PayRequest, ids: V3Ids) -> dict[str, Any]:
    """Body of a native / jsapi / h5 / app order."""
    body = common_order_fields(req, ids)
    body["time_expire"] = rfc3339(req.expire_at)
    body["notify_url"] = req.notify_url
    scene: dict[str, Any] = {"payer_client_ip": req.client_ip}
    if req.terminal_id:
        scene["device_id"] = req.terminal_id
    if req.store_id:
        scene["store_info"] = {"id": req.store_id}
    match req.method:
        case Method.JSAPI:
            body["payer"] = _payer(req, ids)
        case Method.H5:
            scene["h5_info"] = {"type": "Wap"}
        case _:
            pass
    body["scene_info"] = scene
    return body


def client_app_id(ids: V3Ids) -> str:
    return (ids.sub_appid or ids.appid) if ids.partner else ids.appid


def jsapi_sign_message(app_id: str, timestamp: str, nonce: str, package: str) -> str:
    """``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` – what the JSAPI ``paySign`` signs."""
    return f"{app_id}\n{timestamp}\n{nonce}\n{package}\n"


def app_sign_message(app_id: str, timestamp: str, nonce: str, prepay_id: str) -> str:
    """``appid\\ntimestamp\\nnoncestr\\nprepayid\\n`` – what the app SDK's ``sign`` signs."""
    return f"{app_id}\n{timestamp}\n{nonce}\n{prepay_id}\n"


def client_pay_params(profile: V3Profile, method: Method, ids: V3Ids, prepay_id: str, timestamp: str,
                      nonce: str, sign: Callable[[str], str]) -> dict[str, str]:
    """What the client SDK needs to open the cashier for a prepay_id (JSAPI or app)."""
    app_id = client_app_id(ids)
    if method is Method.JSAPI:
        package = f"prepay_id={prepay_id}"
        return {"appId": app_id, "timeStamp": timestamp, "nonceStr": nonce, "package": package,
                "signType": profile.jsapi_sign_type,
                "paySign": sign(jsapi_sign_message(app_id, timestamp, nonce, package))}
    if method is Method.APP:
        return {"appid": app_id, "partnerid": ids.sub_mchid or ids.mchid, "prepayid": prepay_id,
                "package": profile.app_package, "noncestr": nonce, "timestamp": timestamp,
                "sign": sign(app_sign_message(app_id, timestamp, nonce, prepay_id))}
    raise ValueError(f"no client parameters for {method}")


def declined(data: Mapping[str, Any]) -> ChannelResult:
    code, message = error_code(data)
    return ChannelResult(status=TradeStatus.FAILED, failure_code=code or "UNKNOWN", failure_message=message)


def prepay_result(method: Method, status: int, data: Mapping[str, Any],
                  client_params: Callable[[str], dict[str, str]]) -> ChannelResult:
    """The answer to a native / jsapi / h5 / app order: PENDING with what the customer needs, or FAILED.

    ``client_params(prepay_id)`` builds the signed JSAPI/app parameters.
    """
    if status >= 300:
        raise_if_unknown_outcome(data)
        return declined(data)
    match method:
        case Method.QR:
            code_url = data.get("code_url")
            if not isinstance(code_url, str) or not code_url:
                raise _garbage("native order without code_url")
            return ChannelResult(status=TradeStatus.PENDING, qr_code=code_url)
        case Method.H5:
            h5_url = data.get("h5_url")
            if not isinstance(h5_url, str) or not h5_url:
                raise _garbage("h5 order without h5_url")
            return ChannelResult(status=TradeStatus.PENDING, pay_params={"h5_url": h5_url})
        case Method.JSAPI | Method.APP:
            prepay_id = data.get("prepay_id")
            if not isinstance(prepay_id, str) or not prepay_id:
                raise _garbage(f"{method} order without prepay_id")
            return ChannelResult(status=TradeStatus.PENDING, pay_params=client_params(prepay_id))
        case _:
            raise ValueError(f"no prepay for {method}")


# -- transactions ---------------------------------------------------------------

def transaction_result(data: Mapping[str, Any]) -> ChannelResult:
    """A transaction object (query answer, codepay answer, decrypted notification)."""
    state = data.get("trade_state")
    if not isinstance(state, str):
        raise _garbage("transaction without trade_state")
    status = trade_status(state)
    amount = data.get("amount")
    total = _amount(amount.get("total"), "amount.total") if isinstance(amount, Mapping) else None
    failed = status is TradeStatus.FAILED
    return ChannelResult(
        status=status,
        channel_trade_no=data.get("transaction_id") or None,
        failure_code=state if failed else None,
        failure_message=(data.get("trade_state_desc") or None) if failed else None,
        paid_at=parse_time(data.get("success_time")) if status is TradeStatus.SUCCEEDED else None,
        amount=total,
    )


def query_result(status: int, data: Mapping[str, Any]) -> ChannelResult:
    if status < 300:
        return transaction_result(data)
    code, message = error_code(data)
    if code in NOT_FOUND_CODES or status == 404:
        return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code or None, failure_message=message)
    raise_if_unknown_outcome(data)
    # the outcome of the payment is still unknown: the engine keeps querying
    raise ChannelError(f"query refused: {code} {message}", retriable=True, kind="rejected")


def close_result(status: int, data: Mapping[str, Any]) -> ChannelResult | None:
    """CLOSED, NOT_FOUND, or ``None`` when the order turned out paid (query it for the real status)."""
    if status < 300:
        return ChannelResult(status=TradeStatus.CLOSED)
    code, message = error_code(data)
    if code in ORDER_PAID_CODES:
        return None
    if code in NOT_FOUND_CODES or status == 404:
        return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code or None, failure_message=message)
    raise_if_unknown_outcome(data)
    raise ChannelError(f"close refused: {code} {message}", retriable=False, kind="rejected")


# -- refunds --------------------------------------------------------------------

def refund_body(req: RefundRequest, ids: V3Ids) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if ids.partner:
        body["sub_mchid"] = ids.sub_mchid
    if req.channel_trade_no:
        body["transaction_id"] = req.channel_trade_no
    else:
        body["out_trade_no"] = wire_out_no(req.out_trade_no)
    body["out_refund_no"] = wire_out_no(req.out_refund_no)
    if req.reason:
        body["reason"] = req.reason[:80]
    body["notify_url"] = req.notify_url
    body["amount"] = {"refund": req.refund_amount, "total": req.total_amount, "currency": "CNY"}
    return body


def refund_object_result(data: Mapping[str, Any]) -> RefundResult:
    st = data.get("status", data.get("refund_status"))
    if not isinstance(st, str):
        raise _garbage("refund without status")
    status = refund_status(st)
    return RefundResult(status=status, channel_refund_no=data.get("refund_id") or None,
                        failure_code=st if status is RefundStatus.FAILED else None)


def refund_result(status: int, data: Mapping[str, Any]) -> RefundResult:
    """A refund answer (create or query): the refund object, or a refusal as FAILED data."""
    if status < 300:
        return refund_object_result(data)
    raise_if_unknown_outcome(data)
    code, message = error_code(data)
    return RefundResult(status=RefundStatus.FAILED, failure_code=code or "UNKNOWN", failure_message=message)


# -- notifications ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Resource:
    algorithm: str
    nonce: str
    associated_data: str
    ciphertext: str


def notification_envelope(body: bytes) -> tuple[dict[str, Any], Resource]:
    """The outer JSON of a notification and its encrypted resource. Raises NotificationRejected("malformed")."""
    try:
        env = orjson.loads(body)
        res = env["resource"]
        resource = Resource(str(res["algorithm"]), str(res["nonce"]), str(res.get("associated_data") or ""),
                            str(res["ciphertext"]))
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise NotificationRejected("malformed", f"not a notification envelope: {e}") from None
    if not isinstance(env, dict):
        raise NotificationRejected("malformed", "notification is not an object")
    if resource.algorithm != "AEAD_AES_256_GCM":
        raise NotificationRejected("undecryptable", f"algorithm {resource.algorithm}")
    return env, resource


def notification_from(kind: str, envelope: Mapping[str, Any], plain: Mapping[str, Any]) -> Notification:
    """A verified, decrypted notification → :class:`Notification`.

    ``kind`` is where it arrived (``payment`` or ``refund`` URL); an event of
    the other kind is refused as malformed rather than guessed at.
    """
    event = str(envelope.get("event_type") or "")
    is_refund = event.startswith("REFUND.")
    if is_refund != (kind == "refund"):
        raise NotificationRejected("malformed", f"{event or 'an event'} posted to the {kind} URL")
    try:
        merchant = plain.get("mchid") or plain.get("sp_mchid")
        amount = plain.get("amount") or {}
        if is_refund:
            refund = refund_object_result(plain)
            return Notification(
                kind="refund", out_trade_no=str(plain["out_trade_no"]), merchant_ref=merchant,
                amount=_amount(amount.get("refund"), "amount.refund"),
                out_refund_no=str(plain["out_refund_no"]), refund=refund,
                notification_id=envelope.get("id"))
        payment = transaction_result(plain)
        return Notification(
            kind="payment", out_trade_no=str(plain["out_trade_no"]), merchant_ref=merchant,
            amount=payment.amount, payment=payment, notification_id=envelope.get("id"))
    except (KeyError, TypeError, AttributeError, ChannelError) as e:
        raise NotificationRejected("malformed", f"notification resource: {e}") from None


# -- the daily trade bill -------------------------------------------------------

#: WeChat's trade bill (bill_type=ALL) columns, in order
BILL_HEADER: tuple[str, ...] = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
    "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号",
    "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
    "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
)
BILL_SUMMARY_HEADER: tuple[str, ...] = (
    "总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
    "申请退款总金额",
)


def bill_field(value: str) -> str:
    """Every data field of the bill is prefixed with a backtick (so spreadsheets keep long numbers)."""
    return "`" + value


def _unfield(value: str) -> str:
    return value.strip().lstrip("`").strip()


def parse_trade_bill(text: str) -> list[StatementLine]:
    """Parse the trade bill CSV: one line per payment (SUCCESS → SUCCEEDED, REVOKED → REVERSED) and
    per successful refund (REFUND rows → REFUNDED). Columns are found by name, so the provider
    may add or reorder columns; the summary block at the end is skipped.
    """
    rows = [ln.rstrip("\r") for ln in text.lstrip("\ufeff").split("\n") if ln.strip()]
    if not rows:
        return []
    header = [h.strip() for h in rows[0].split(",")]
    try:
        col = {name: header.index(name) for name in ("商户订单号", "微信订单号", "交易状态", "订单金额",
                                                    "商户退款单号", "退款金额")}
    except ValueError as e:
        raise _garbage(f"trade bill header: {e}") from None
    applied = header.index("申请退款金额") if "申请退款金额" in header else col["退款金额"]
    refund_state = header.index("退款状态") if "退款状态" in header else None
    lines: list[StatementLine] = []
    for row in rows[1:]:
        if row.startswith(BILL_SUMMARY_HEADER[0]):
            break  # the summary block
        f = [_unfield(v) for v in row.split(",")]
        if len(f) < len(header):
            raise _garbage(f"short trade bill row: {row!r}")
        state = f[col["交易状态"]]
        try:
            if state == "REFUND":
                if refund_state is not None and f[refund_state] not in ("SUCCESS", ""):
                    continue
                amount = yuan_to_fen(f[applied] or f[col["退款金额"]])
                lines.append(StatementLine(kind="refund", out_trade_no=f[col["商户订单号"]],
                                           channel_trade_no=f[col["微信订单号"]] or None, amount=amount,
                                           status="REFUNDED", out_refund_no=f[col["商户退款单号"]] or None))
            elif state in ("SUCCESS", "REVOKED"):
                lines.append(StatementLine(kind="payment", out_trade_no=f[col["商户订单号"]],
                                           channel_trade_no=f[col["微信订单号"]] or None,
                                           amount=yuan_to_fen(f[col["订单金额"]]),
                                           status="SUCCEEDED" if state == "SUCCESS" else "REVERSED"))
        except ValueError as e:
            raise _garbage(f"trade bill amount: {e}") from None
    return lines


def trade_ref_ids(ref: TradeRef | RefundRequest | PayRequest, mchid: str, appid: str,
                  sub_appid: str | None = None) -> V3Ids:
    """The ids for a flow: service-provider mode exactly when the payment names a sub-merchant."""
    return V3Ids(mchid=mchid, appid=appid, sub_mchid=ref.sub_mch_id or None,
                 sub_appid=sub_appid if ref.sub_mch_id else None)


#: "no bill for that day" (no trades): an empty statement, not an error
NO_BILL_CODES = frozenset({"NO_STATEMENT_EXIST"})


def bill_result(status: int, data: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(download_url, hash_type, hash_value) of a bill application, or None when the day has no bill."""
    if status >= 300:
        code, message = error_code(data)
        if code in NO_BILL_CODES:
            return None
        # STATEMENT_CREATING and the like: ask again later
        raise ChannelError(f"statement refused: {code} {message}", retriable=True, kind="rejected")
    url, hash_type, hash_value = data.get("download_url"), data.get("hash_type"), data.get("hash_value")
    if not all(isinstance(v, str) and v for v in (url, hash_type, hash_value)):
        raise _garbage("bill answer without download_url/hash_type/hash_value")
    return str(url), str(hash_type), str(hash_value)


def bill_hash_ok(raw: bytes, hash_type: str, hash_value: str) -> bool:
    try:
        digest = hashlib.new(hash_type.lower().replace("-", ""), raw).hexdigest()
    except ValueError:
        return False
    return digest == hash_value.lower()
