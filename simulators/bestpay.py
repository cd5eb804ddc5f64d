"""Bestpay barcode simulator: the gateway's side of channels.bestpay.transformers.

Every request's fixed-order ``mac`` is checked with the merchant key exactly as
Bestpay does; a wrong one is answered ``{"success": false, "errorCode":
"MAC_ERROR"}``. Successful answers carry ``result.sign``; notifications are
form posts with ``SIGN``. Codes and statuses are the adapter's documented
choices.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlencode

import orjson
from aiohttp import web

from simulators import kit as simkit
from channels.bestpay import transformers as tf
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings, SimState

_TRANS_STATUS = {
    OrderState.NOTPAY: tf.TS_PROCESSING, OrderState.USERPAYING: tf.TS_PROCESSING,
    OrderState.SUCCESS: tf.TS_SUCCESS, OrderState.REFUND: tf.TS_SUCCESS, OrderState.PAYERROR: tf.TS_FAILED,
    OrderState.CLOSED: tf.TS_FAILED, OrderState.REVOKED: tf.TS_REVERSED,
}
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}


def _json(data: Mapping[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def error(code: str, msg: str) -> web.Response:
    return _json({"success": False, "result": None, "errorCode": code, "errorMsg": msg})


class BestpayGateway:
    def __init__(self, settings: SimSettings, state: SimState) -> None:
        self.settings = settings
        self.state = state
        key = settings.secret.get()
        self.key = key.decode() if isinstance(key, bytes) else key
        self.merchant = settings.mch_id
        self.pwd = str(settings.extra.get("merchant_pwd", ""))
        state.notify_builder = self.payment_notification
        state.refund_notify_builder = self.refund_notification

    def ok(self, result: dict[str, Any], sign_order: tuple[str, ...]) -> web.Response:
        result = dict(result, encodeType=tf.ENCODE_TYPE_MD5)
        result["sign"] = tf.mac(sign_order, tf.upper_keys(result), self.key)
        return _json({"success": True, "result": result, "errorCode": None, "errorMsg": None})

    async def form(self, request: web.Request, mac_order: tuple[str, ...]) -> dict[str, str] | web.Response:
        try:
            form = tf.parse_form(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error(tf.ERR_PARAM, "参数格式错误")
        if not tf.mac_ok(mac_order, tf.upper_keys(form), self.key, form.get("mac")):
            return error(tf.ERR_MAC, "mac校验失败")
        if form.get("merchantId") != self.merchant:
            return error(tf.ERR_PARAM, "商户号不存在")
        if "MERCHANTPWD" in mac_order and form.get("merchantPwd", "") != self.pwd:
            return error("MERCHANT_PWD_ERROR", "商户交易密码错误")
        return form

    def trade(self, order: SimOrder) -> web.Response:
        no = tf.to_order_no(order.out_trade_no)
        return self.ok({
            "merchantId": self.merchant, "orderNo": no, "orderReqNo": no, "orderDate": order.extra.get("orderDate"),
            "ourTransNo": order.channel_trade_no, "transAmt": str(order.amount),
            "transStatus": _TRANS_STATUS[order.state], "refundFlag": "1" if order.refunds else "0",
        }, tf.TRADE_SIGN)

    # -- notifications ----------------------------------------------------
    def payment_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        assert order.notify_url
        no = tf.to_order_no(order.out_trade_no)
        paid = order.state in (OrderState.SUCCESS, OrderState.REFUND)
        form = {
            "MERCHANTID": self.merchant, "UPTRANSEQ": order.channel_trade_no, "ORDERSEQ": no,
            "ORDERREQTRANSEQ": no, "ORDERAMOUNT": str(order.amount), "RETNCODE": tf.NOTIFY_OK if paid else "0001",
            "RETNINFO": "支付成功" if paid else "支付失败",
            "TRANDATE": tf.day_text(order.paid_at or order.created_at), "ENCODETYPE": tf.ENCODE_TYPE_MD5,
        }
        form["SIGN"] = tf.mac(tf.PAY_NOTIFY_MAC, form, self.key)
        return order.notify_url, FORM, urlencode(form).encode("ascii")

    def refund_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        assert refund is not None
        form = {
            "MERCHANTID": self.merchant, "OLDORDERNO": tf.to_order_no(order.out_trade_no),
            "REFUNDREQNO": tf.to_order_no(refund.out_refund_no), "OURTRANSNO": refund.channel_refund_no,
            "TRANSAMT": str(refund.amount),
            "TRANSSTATUS": tf.TS_SUCCESS if refund.status == "SUCCESS" else tf.TS_FAILED,
        }
        form["SIGN"] = tf.mac(tf.REFUND_NOTIFY_MAC, form, self.key)
        return refund.extra["notify_url"], FORM, urlencode(form).encode("ascii")

    # -- endpoints --------------------------------------------------------
    async def form_and_order(self, request: web.Request, mac_order: tuple[str, ...], key: str,
                             ) -> tuple[dict[str, str], SimOrder] | web.Response:
        """The checked form and the order its ``key`` field names (or the refusal to send)."""
        form = await self.form(request, mac_order)
        if isinstance(form, web.Response):
            return form
        try:
            order = self.state.get(tf.from_order_no(form.get(key, "")))
        except ValueError:
            order = None
        if order is None:
            return error(tf.ERR_NOT_FOUND, "订单不存在")
        return form, order

    async def place_order(self, request: web.Request) -> web.Response:
        form = await self.form(request, tf.PLACE_ORDER_MAC)
        if isinstance(form, web.Response):
            return form
        try:
            amount = tf.wire_to_fen(form.get("orderAmt"))
            out_trade_no = tf.from_order_no(form.get("orderNo", ""))
        except ValueError:
            return error(tf.ERR_PARAM, "参数错误")
        barcode = form.get("barcode", "")
        if not amount or not barcode.isdigit() or form.get("orderReqNo") != form.get("orderNo") \
                or form.get("productAmt") != form.get("orderAmt") or form.get("channel") != tf.CHANNEL:
            return error(tf.ERR_PARAM, "参数错误")
        order = self.state.get(out_trade_no)
        if order is None:
            order = SimOrder(out_trade_no=out_trade_no, amount=amount, method="barcode",
                             notify_url=form.get("backUrl") or None, channel_trade_no=self.state.new_trade_no("BP"),
                             scenario=Scenario.for_amount(amount), mch_id=self.merchant, auth_code=barcode,
                             extra={"orderDate": form.get("orderDate")})
            simkit.barcode_outcome(order)
            self.state.add(order)
            await self.state.barcode_notifications(order)
        order.pay_calls += 1
        await simkit.slow_if(order, self.settings)
        if order.scenario in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return error(tf.ERR_SYSTEM, "系统繁忙，请查询")
        if order.state is OrderState.PAYERROR:
            return error(tf.ERR_DECLINED, "账户余额不足")
        return self.trade(order)

    async def query_order(self, request: web.Request) -> web.Response:
        found = await self.form_and_order(request, tf.QUERY_MAC, "orderNo")
        if isinstance(found, web.Response):
            return found
        form, order = found
        self.state.on_query(order)
        return self.trade(order)

    async def refund(self, request: web.Request) -> web.Response:
        found = await self.form_and_order(request, tf.REFUND_MAC, "oldOrderNo")
        if isinstance(found, web.Response):
            return found
        form, order = found
        try:
            out_refund_no = tf.from_order_no(form.get("refundReqNo", ""))
            amount = tf.wire_to_fen(form.get("transAmt")) or 0
        except ValueError:
            return error(tf.ERR_PARAM, "参数错误")
        refund = order.refunds.get(out_refund_no)
        if refund is None:
            if order.scenario is Scenario.REFUND_DECLINED:
                return error(tf.ERR_REFUND_REFUSED, "退款失败")
            if order.state not in (OrderState.SUCCESS, OrderState.REFUND) \
                    or not 0 < amount <= order.amount - order.refunded:
                return error(tf.ERR_REFUND_REFUSED, "可退金额不足或原交易未成功")
            refund = SimRefund(out_refund_no, amount, self.state.new_trade_no("BPR"),
                               extra={"notify_url": form.get("bgUrl")})
            order.refunds[out_refund_no] = refund
            order.state = OrderState.REFUND
            if refund.extra["notify_url"]:
                self.state.notify(order, refund)
        return self.ok({"oldOrderNo": form["oldOrderNo"], "refundReqNo": form["refundReqNo"],
                        "transAmt": str(refund.amount)}, tf.REFUND_SIGN)

    async def reverse(self, request: web.Request) -> web.Response:
        found = await self.form_and_order(request, tf.REVERSE_MAC, "oldOrderNo")
        if isinstance(found, web.Response):
            return found
        form, order = found
        order.reverse_calls += 1
        if order.state is OrderState.REFUND:
            return error("REVERSE_NOT_ALLOWED", "已退款订单不能撤销")
        order.state = OrderState.REVOKED
        return self.ok({"oldOrderNo": form["oldOrderNo"], "refundReqNo": form.get("refundReqNo", ""),
                        "transAmt": str(order.amount)}, tf.REFUND_SIGN)

    async def statement(self, request: web.Request) -> web.Response:
        form = await self.form(request, tf.STATEMENT_MAC)
        if isinstance(form, web.Response):
            return form
        fd = form.get("fileDate", "")
        if len(fd) != 8 or not fd.isdigit():
            return error(tf.ERR_PARAM, "fileDate 错误")
        rows: list[list[str]] = []
        for kind, order, refund in self.state.statement_rows(f"{fd[:4]}-{fd[4:6]}-{fd[6:]}"):
            no = tf.to_order_no(order.out_trade_no)
            if refund is None:
                assert order.paid_at is not None
                rows.append([tf.TRANS_TYPE_PAY, no, no, order.channel_trade_no, "", str(order.amount),
                             tf.order_date(order.paid_at), tf.TS_SUCCESS])
            else:
                rows.append([tf.TRANS_TYPE_REFUND, no, no, order.channel_trade_no,
                             tf.to_order_no(refund.out_refund_no), str(refund.amount),
                             tf.order_date(refund.created_at), tf.TS_SUCCESS])
        return web.Response(text=tf.statement_text(self.merchant, fd, rows), content_type="text/plain")


def create_app(settings: SimSettings) -> web.Application:
    app, state = simkit.base_app(settings)
    gw = BestpayGateway(settings, state)
    app.router.add_post("/barcode/placeOrder", gw.place_order)
    app.router.add_post("/query/queryOrder", gw.query_order)
    app.router.add_post("/refund/commonRefund", gw.refund)
    app.router.add_post("/reverse/reverse", gw.reverse)
    app.router.add_post("/reconciliation/download", gw.statement)
    return app
