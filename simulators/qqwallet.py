"""QQ Wallet (qpay) v2 simulator: the qpay.qq.com / api.qpay.qq.com side.

Verifies every request's ``sign`` with the merchant API key (MD5, or
HMAC-SHA256 when the request says ``sign_type=HMAC-SHA256``) and refuses a bad
one the qpay way (``return_code=FAIL``, unsigned); signs its answers and
payment notifications with the algorithm the order was created with. The
amount's last two digits choose the behaviour (:class:`simulators.kit.Scenario`).
"""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Awaitable, Callable

from aiohttp import web

from channels import money
from simulators import kit as simkit, walletkit
from channels.qqwallet import transformers as tf
from simulators.kit import OrderState, SimOrder, SimRefund, SimSettings, SimState, base_app, slow_if

Handler = Callable[[SimState, dict[str, str]], Awaitable[dict[str, str]]]

#: err_code (and its description) answering a pay request by the order's state
_STATE_ERRORS: dict[OrderState, tuple[str, str]] = {
    OrderState.USERPAYING: ("USERPAYING", "需要用户输入支付密码"),
    OrderState.PAYERROR: ("NOTENOUGH", "用户余额不足"),
    OrderState.CLOSED: ("ORDERCLOSED", "订单已关闭"),
    OrderState.REVOKED: ("ORDERREVERSED", "订单已撤销"),
}
_REFUND_ERRORS = {
    walletkit.REFUND_DECLINED: ("NOTENOUGH", "商户可用退款余额不足"),
    walletkit.REFUND_NOT_PAID: ("ERROR", "订单未支付，不能退款"),
    walletkit.REFUND_EXCEEDS: ("PARAM_ERROR", "退款金额大于可退金额"),
}


def _fail(code: str, des: str) -> dict[str, str]:
    return {"result_code": "FAIL", "err_code": code, "err_code_des": des}


def trade_fields(order: SimOrder) -> dict[str, str]:
    fields = {
        "trade_type": order.extra.get("trade_type", ""), "trade_state": str(order.state),
        "bank_type": "BALANCE", "fee_type": "CNY", "total_fee": str(simkit.stated_amount(order)),
        "transaction_id": order.channel_trade_no, "out_trade_no": order.out_trade_no,
    }
    if order.paid_at and order.state in (OrderState.SUCCESS, OrderState.REFUND):
        fields.update(cash_fee=str(simkit.stated_amount(order)), time_end=tf.qpay_time(order.paid_at))
    return fields


def _find(state: SimState, p: dict[str, str]) -> SimOrder | None:
    return state.get(p.get("out_trade_no"), p.get("transaction_id"))


def create_app(settings: SimSettings) -> web.Application:
    app, state = base_app(settings)
    key = str(settings.secret.get())

    def answer(p: dict[str, str], fields: dict[str, str], sign_type: str) -> web.Response:
        out = {"return_code": "SUCCESS", "return_msg": "OK", "appid": p.get("appid", ""),
               "mch_id": settings.mch_id, **fields}
        body = tf.to_xml(tf.signed(out, key, sign_type, secrets.token_hex(16)))
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    def refused(message: str) -> web.Response:
        return web.Response(body=tf.ack_xml(False, message), content_type="text/xml", charset="utf-8")

    async def authenticate(request: web.Request) -> tuple[dict[str, str], str] | web.Response:
        """(params, sign_type) of a well-signed request by our merchant, or qpay's refusal."""
        try:
            p = tf.parse_xml(await request.read())
        except ValueError:
            return refused("XML格式错误")
        sign_type = p.get("sign_type", tf.SIGN_MD5)
        if sign_type not in tf.SIGN_TYPES:
            return refused("签名类型错误")
        if not p.get("sign") or not tf.verify(p, key, sign_type):
            return refused("签名错误")
        if p.get("mch_id") != settings.mch_id:
            return answer(p, _fail("NOAUTH", "商户号错误"), sign_type)
        return p, sign_type

    def endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            got = await authenticate(request)
            if isinstance(got, web.Response):
                return got
            p, sign_type = got
            return answer(p, await handler(state, p), sign_type)
        return serve

    async def micropay(state: SimState, p: dict[str, str]) -> dict[str, str]:
        if not p.get("out_trade_no") or not p.get("total_fee", "").isdigit() or not p.get("auth_code"):
            return _fail("PARAM_ERROR", "参数错误")
        if not p["auth_code"].isdigit():
            return _fail("AUTH_CODE_INVALID", "付款码无效")
        order, created = walletkit.open_order(
            state, out_trade_no=p["out_trade_no"], amount=int(p["total_fee"]), method="barcode",
            notify_url=p.get("notify_url"), mch_id=p["mch_id"], auth_code=p["auth_code"])
        if created:
            order.extra.update(trade_type="MICROPAY", sign_type=p.get("sign_type", tf.SIGN_MD5))
            await walletkit.settle_barcode(state, settings, order)
            if walletkit.answers_system_error(order, created):
                return _fail("SYSTEMERROR", "系统超时")
        if order.state in _STATE_ERRORS:
            return {**_fail(*_STATE_ERRORS[order.state]), "out_trade_no": order.out_trade_no}
        return {"result_code": "SUCCESS", **trade_fields(order)}

    async def unified_order(state: SimState, p: dict[str, str]) -> dict[str, str]:
        trade_type = p.get("trade_type")
        if trade_type not in ("NATIVE", "JSAPI") or not p.get("out_trade_no") or not p.get(
                "total_fee", "").isdigit():
            return _fail("PARAM_ERROR", "参数错误")
        token = secrets.token_hex(16)
        order, created = walletkit.open_order(
            state, out_trade_no=p["out_trade_no"], amount=int(p["total_fee"]),
            method="qr" if trade_type == "NATIVE" else "jsapi", notify_url=p.get("notify_url"),
            mch_id=p["mch_id"], qr_code=f"https://qpay.qq.com/qr/{token[:12]}", prepay_id=f"6V{token}")
        if created:
            order.extra.update(trade_type=trade_type, sign_type=p.get("sign_type", tf.SIGN_MD5))
            await slow_if(order, settings)
        elif order.state in (OrderState.SUCCESS, OrderState.REFUND):
            return _fail("ORDERPAID", "订单已支付")
        elif order.state in (OrderState.CLOSED, OrderState.REVOKED, OrderState.PAYERROR):
            return _fail(*_STATE_ERRORS[order.state])
        fields = {"result_code": "SUCCESS", "trade_type": trade_type, "prepay_id": order.prepay_id or ""}
        if trade_type == "NATIVE":
            fields["code_url"] = order.qr_code or ""
        return fields

    async def order_query(state: SimState, p: dict[str, str]) -> dict[str, str]:
        order = walletkit.seen(state, _find(state, p))
        if order is None:
            return _fail("ORDERNOTEXIST", "订单不存在")
        state.on_query(order)
        return {"result_code": "SUCCESS", **trade_fields(order)}

    async def close_order(state: SimState, p: dict[str, str]) -> dict[str, str]:
        order = _find(state, p)
        if order is None:
            return _fail("ORDERNOTEXIST", "订单不存在")
        if walletkit.close_order(order):
            return {"result_code": "SUCCESS"}
        if order.state is OrderState.REVOKED:
            return _fail("ORDERREVERSED", "订单已撤销")
        return _fail("ORDERPAID", "订单已支付")

    async def reverse(state: SimState, p: dict[str, str]) -> dict[str, str]:
        order = _find(state, p)
        if order is None:
            return _fail("ORDERNOTEXIST", "订单不存在")
        if not walletkit.reverse_order(order):
            return {**_fail("TRADE_ERROR", "订单已退款，不能撤销"), "recall": "N"}
        return {"result_code": "SUCCESS", "recall": "N", "transaction_id": order.channel_trade_no,
                "out_trade_no": order.out_trade_no}

    async def refund(state: SimState, p: dict[str, str]) -> dict[str, str]:
        order = _find(state, p)
        if order is None:
            return _fail("ORDERNOTEXIST", "订单不存在")
        if not p.get("out_refund_no") or not p.get("refund_fee", "").isdigit():
            return _fail("PARAM_ERROR", "参数错误")
        got = walletkit.refund_order(state, order, out_refund_no=p["out_refund_no"], amount=int(p["refund_fee"]))
        if isinstance(got, str):
            return _fail(*_REFUND_ERRORS[got])
        if walletkit.answer_lost(got):
            return _fail("SYSTEMERROR", "系统超时")
        return {"result_code": "SUCCESS", "transaction_id": order.channel_trade_no,
                "out_trade_no": order.out_trade_no, "out_refund_no": got.out_refund_no,
                "refund_id": got.channel_refund_no, "refund_fee": str(got.amount),
                "total_fee": str(order.amount)}

    async def refund_query(state: SimState, p: dict[str, str]) -> dict[str, str]:
        found = walletkit.find_refund(state, p.get("out_refund_no", ""))
        if found is None:
            return _fail("REFUNDNOTEXIST", "退款单不存在")
        order, r = found
        return {"result_code": "SUCCESS", "transaction_id": order.channel_trade_no,
                "out_trade_no": order.out_trade_no, "total_fee": str(order.amount), "refund_count": "1",
                "out_refund_no_0": r.out_refund_no, "refund_id_0": r.channel_refund_no,
                "refund_fee_0": str(r.amount), "refund_status_0": r.status}

    async def statement(request: web.Request) -> web.Response:
        got = await authenticate(request)
        if isinstance(got, web.Response):
            return got
        p = got[0]
        try:
            day = datetime.strptime(p.get("bill_date", ""), "%Y%m%d").date().isoformat()
        except ValueError:
            return refused("bill_date格式错误")
        rows = state.statement_rows(day)
        if not rows:
            return refused(tf.NO_BILL)
        text = tf.statement_csv(tf.STATEMENT_COLUMNS, (_statement_row(settings, o, r) for _, o, r in rows),
                                _statement_totals(rows))
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    def notify(order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        fields = {"appid": settings.app_id, "mch_id": settings.mch_id, **trade_fields(order)}
        signed = tf.signed(fields, key, order.extra.get("sign_type", tf.SIGN_MD5), secrets.token_hex(16))
        return order.notify_url or "", {"Content-Type": "text/xml"}, tf.to_xml(signed)

    state.notify_builder = notify
    for name, handler in (("micropay", micropay), ("unified_order", unified_order), ("order_query", order_query),
                          ("close_order", close_order), ("reverse", reverse), ("refund", refund),
                          ("refund_query", refund_query)):
        app.router.add_post(tf.PATHS[name], endpoint(handler))
    app.router.add_post(tf.PATHS["statement"], statement)
    return app


def _statement_row(settings: SimSettings, order: SimOrder, refund: SimRefund | None) -> list[str]:
    when = refund.created_at if refund else order.paid_at
    row = dict.fromkeys(tf.STATEMENT_COLUMNS, "")
    row.update({
        "交易时间": when.astimezone(tf.CST).strftime("%Y-%m-%d %H:%M:%S") if when else "",
        "公众账号ID": settings.app_id, "商户号": settings.mch_id, "QQ钱包订单号": order.channel_trade_no,
        "商户订单号": order.out_trade_no, "交易类型": order.extra.get("trade_type", ""),
        "交易状态": "REFUND" if refund else ("REVOKED" if order.state is OrderState.REVOKED else "SUCCESS"),
        "付款银行": "BALANCE", "货币种类": "CNY", "总金额": money.fen_to_yuan(order.amount),
        "代金券或立减优惠金额": "0.00", "手续费": "0.00", "费率": "0.60%",
    })
    if refund:
        row.update({"QQ钱包退款单号": refund.channel_refund_no, "商户退款单号": refund.out_refund_no,
                    "退款金额": money.fen_to_yuan(refund.amount), "代金券或立减优惠退款金额": "0.00",
                    "退款类型": "ORIGINAL", "退款状态": "SUCCESS"})
    return list(row.values())


def _statement_totals(rows: list[tuple[str, SimOrder, SimRefund | None]]) -> list[str]:
    paid = sum(o.amount for kind, o, _ in rows if kind == "payment")
    refunded = sum(r.amount for kind, _, r in rows if kind == "refund" and r)
    return [str(len(rows)), money.fen_to_yuan(paid), money.fen_to_yuan(refunded), "0.00", "0.00"]

