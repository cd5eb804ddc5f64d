"""JD Pay simulator: paygate's side of the XML envelope (see channels.jdpay.transformers).

It opens every request with the merchant's des key and paycore's public key
exactly as JD does; a request that does not decrypt or verify is answered
with an unencrypted ``result`` (000003 / 000001), as JD's gateway does. Its
answers and notifications are signed with the simulator's own key. The
result codes and status values are the adapter's documented choices.

``GET /jdpay/cashier?merchant=…&orderId=…&tradeNum=…`` plays JD's H5 cashier
(the adapter's ``extra.h5_pay_url`` points here in dev and tests): the order's
amount, Pay and Cancel. After paying it sends the browser to the uniorder's
``callbackUrl`` (only an http(s) one), else back to the page that opened it;
Cancel goes back.
"""
from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators import kit as simkit
from channels.jdpay import transformers as tf
from channels.jdpay.adapter import load_private_key, load_public_key
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings, SimState

_STATUS = {
    OrderState.NOTPAY: tf.ST_CREATED, OrderState.USERPAYING: tf.ST_PROCESSING, OrderState.SUCCESS: tf.ST_SUCCESS,
    OrderState.PAYERROR: tf.ST_FAILED, OrderState.CLOSED: tf.ST_CLOSED, OrderState.REVOKED: tf.ST_REVOKED,
}


def _status(order: SimOrder) -> str:
    if order.state is OrderState.REFUND:
        return tf.ST_REFUND if order.refunded >= order.amount else tf.ST_PART_REFUND
    return _STATUS[order.state]


class JdGateway:
    def __init__(self, settings: SimSettings, state: SimState) -> None:
        self.settings = settings
        self.state = state
        self.merchant = settings.mch_id
        self.key: rsa.RSAPrivateKey = load_private_key(settings.provider_private_key_file)
        self.paycore_key: rsa.RSAPublicKey = load_public_key(settings.paycore_public_key_file)
        self.des = tf.des_key_bytes(str(settings.extra["des_key"]))
        state.notify_builder = self.payment_notification
        state.refund_notify_builder = self.refund_notification

    # -- envelopes --------------------------------------------------------
    def answer(self, code: str, desc: str, fields: list[tuple[str, Any]]) -> web.Response:
        body = tf.seal(self.key, self.des, self.merchant,
                       [("version", tf.VERSION), ("merchant", self.merchant),
                        ("result", (("code", code), ("desc", desc)))] + fields, result=(code, desc))
        return web.Response(body=body, content_type="application/xml", charset="utf-8")

    def fail(self, code: str, desc: str) -> web.Response:
        return web.Response(body=tf.error_envelope(self.merchant, code, desc), content_type="application/xml",
                            charset="utf-8")

    async def open(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await request.read()
        try:
            env = tf.open_envelope(self.paycore_key, self.des, raw)
        except tf.EnvelopeError as e:
            if e.reason == "bad_signature":
                return self.fail(tf.CODE_SIGN_ERROR, "验签失败")
            if e.reason == "undecryptable":
                return self.fail(tf.CODE_DECRYPT_ERROR, "解密失败")
            return self.fail("000004", "报文格式错误")
        if env.merchant != self.merchant or env.fields is None:
            return self.fail("000005", "商户号不存在")
        return env.fields

    async def open_original(self, request: web.Request) -> tuple[dict[str, Any], SimOrder] | web.Response:
        """The request's fields and the original order its ``oTradeNum`` names (or the refusal)."""
        f = await self.open(request)
        if isinstance(f, web.Response):
            return f
        order = self.state.get(tf.from_trade_num(f.get("oTradeNum") or ""))
        if order is None:
            return self.answer(tf.CODE_NOT_FOUND, "原交易不存在", [])
        return f, order

    def trade_fields(self, order: SimOrder) -> list[tuple[str, Any]]:
        paid = order.paid_at.astimezone(tf.CST).strftime("%Y%m%d%H%M%S") if order.paid_at else None
        return [("tradeNum", tf.to_trade_num(order.out_trade_no)), ("orderId", order.channel_trade_no),
                ("amount", str(order.amount)), ("currency", tf.CURRENCY), ("status", _status(order)),
                ("payTime", paid)]

    # -- notifications ----------------------------------------------------
    def _notify(self, url: str, fields: list[tuple[str, Any]]) -> tuple[str, dict[str, str], bytes]:
        body = tf.seal(self.key, self.des, self.merchant,
                       [("version", tf.VERSION), ("merchant", self.merchant),
                        ("result", (("code", tf.CODE_OK), ("desc", "success")))] + fields,
                       result=(tf.CODE_OK, "success"))
        return url, {"Content-Type": "application/xml;charset=UTF-8"}, body

    def payment_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        assert order.notify_url
        return self._notify(order.notify_url, [("tradeType", tf.TRADE_TYPE_PAY)] + self.trade_fields(order))

    def refund_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        assert refund is not None
        return self._notify(refund.extra["notify_url"], self.refund_fields(order, refund))

    def refund_fields(self, order: SimOrder, refund: SimRefund) -> list[tuple[str, Any]]:
        status = {"SUCCESS": tf.ST_SUCCESS, "PROCESSING": tf.ST_PROCESSING}.get(refund.status, tf.ST_FAILED)
        return [("tradeType", tf.TRADE_TYPE_REFUND), ("tradeNum", refund.out_refund_no),
                ("oTradeNum", order.out_trade_no), ("refundId", refund.channel_refund_no),
                ("amount", str(refund.amount)), ("currency", tf.CURRENCY), ("status", status)]

    # -- endpoints --------------------------------------------------------
    def _new_order(self, f: dict[str, Any], method: str) -> SimOrder | web.Response:
        try:
            amount = tf.wire_to_fen(f.get("amount"))
        except ValueError:
            amount = None
        trade_num = f.get("tradeNum")
        if not trade_num or not amount:
            return self.fail("000006", "参数错误")
        existing = self.state.get(tf.from_trade_num(trade_num))
        if existing is not None:
            existing.pay_calls += 1
            return existing
        order = SimOrder(out_trade_no=tf.from_trade_num(trade_num), amount=amount, method=method,
                         notify_url=f.get("notifyUrl") or None, channel_trade_no=self.state.new_trade_no("JD"),
                         scenario=Scenario.for_amount(amount), mch_id=self.merchant, pay_calls=1)
        callback = f.get("callbackUrl") or ""
        if callback.startswith(("http://", "https://")):
            order.extra["callback_url"] = callback
        return order

    async def fkm_pay(self, request: web.Request) -> web.Response:
        f = await self.open(request)
        if isinstance(f, web.Response):
            return f
        token = f.get("token") or ""
        if not token.isdigit():
            return self.fail("000006", "付款码无效")
        order = self._new_order(f, "barcode")
        if isinstance(order, web.Response):
            return order
        if order.pay_calls == 1:
            order.auth_code = token
            simkit.barcode_outcome(order)
            self.state.add(order)
            await self.state.barcode_notifications(order)
        await simkit.slow_if(order, self.settings)
        if order.scenario in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return self.fail(tf.CODE_SYSTEM_ERROR, "系统异常，请查询")
        if order.state is OrderState.USERPAYING:
            return self.answer(tf.CODE_USER_PAYING, "等待用户支付", self.trade_fields(order))
        if order.state is OrderState.PAYERROR:
            return self.answer(tf.CODE_DECLINED, "余额不足", self.trade_fields(order))
        return self.answer(tf.CODE_OK, "成功", self.trade_fields(order))

    async def uniorder(self, request: web.Request) -> web.Response:
        f = await self.open(request)
        if isinstance(f, web.Response):
            return f
        trade_type = f.get("tradeType")
        if trade_type not in ("QR", "GEN"):
            return self.fail("000006", "tradeType 错误")
        order = self._new_order(f, "qr" if trade_type == "QR" else "h5")
        if isinstance(order, web.Response):
            return order
        if order.pay_calls == 1:
            if trade_type == "QR":
                order.qr_code = f"https://h5pay.jd.com/c2c/?t={secrets.token_hex(12)}"
            self.state.add(order)
        await simkit.slow_if(order, self.settings)
        if order.scenario in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return self.fail(tf.CODE_SYSTEM_ERROR, "系统异常，请查询")
        return self.answer(tf.CODE_OK, "成功", [
            ("tradeNum", tf.to_trade_num(order.out_trade_no)), ("orderId", order.channel_trade_no),
            ("amount", str(order.amount)), ("qrCode", order.qr_code)])

    async def query(self, request: web.Request) -> web.Response:
        f = await self.open(request)
        if isinstance(f, web.Response):
            return f
        if f.get("tradeType") == tf.TRADE_TYPE_REFUND:
            order = self.state.get(tf.from_trade_num(f.get("oTradeNum") or ""))
            refund = order.refunds.get(tf.from_trade_num(f.get("tradeNum") or "")) if order else None
            if order is None or refund is None:
                return self.answer(tf.CODE_NOT_FOUND, "交易不存在", [])
            return self.answer(tf.CODE_OK, "成功", self.refund_fields(order, refund))
        order = self.state.get(tf.from_trade_num(f.get("tradeNum") or ""))
        if order is None:
            return self.answer(tf.CODE_NOT_FOUND, "交易不存在", [])
        self.state.on_query(order)
        return self.answer(tf.CODE_OK, "成功", self.trade_fields(order))

    async def refund(self, request: web.Request) -> web.Response:
        found = await self.open_original(request)
        if isinstance(found, web.Response):
            return found
        f, order = found
        out_refund_no = tf.from_trade_num(f.get("tradeNum") or "")
        refund = order.refunds.get(out_refund_no)
        if refund is None:
            try:
                amount = tf.wire_to_fen(f.get("amount")) or 0
            except ValueError:
                amount = 0
            if order.scenario is Scenario.REFUND_DECLINED:
                return self.answer(tf.CODE_REFUND_DECLINED, "退款失败", [])
            if order.state not in (OrderState.SUCCESS, OrderState.REFUND) \
                    or not 0 < amount <= order.amount - order.refunded:
                return self.answer(tf.CODE_REFUND_DECLINED, "退款金额超出可退金额或原交易未成功", [])
            refund = SimRefund(out_refund_no, amount, self.state.new_trade_no("JDR"),
                               extra={"notify_url": f.get("notifyUrl")})
            order.refunds[out_refund_no] = refund
            order.state = OrderState.REFUND
            if refund.extra["notify_url"]:
                self.state.notify(order, refund)
        return self.answer(tf.CODE_OK, "成功", self.refund_fields(order, refund))

    async def revoke(self, request: web.Request) -> web.Response:
        found = await self.open_original(request)
        if isinstance(found, web.Response):
            return found
        f, order = found
        order.reverse_calls += 1
        if order.state is OrderState.NOTPAY:
            order.state = OrderState.CLOSED        # never paid: revoking closes it
        elif order.state in (OrderState.USERPAYING, OrderState.SUCCESS, OrderState.PAYERROR):
            order.state = OrderState.REVOKED
        elif order.state is OrderState.REFUND:
            return self.answer("100003", "已退款交易不能撤销", [])
        return self.answer(tf.CODE_OK, "成功", self.trade_fields(order))

    async def download_bill(self, request: web.Request) -> web.Response:
        f = await self.open(request)
        if isinstance(f, web.Response):
            return f
        try:
            day = datetime.strptime(f.get("billDate") or "", "%Y%m%d").replace(tzinfo=timezone.utc).date()
        except ValueError:
            return self.fail("000006", "billDate 错误")
        rows: list[list[str]] = []
        for kind, order, refund in self.state.statement_rows(day.isoformat()):
            if refund is None:
                assert order.paid_at is not None
                rows.append([order.out_trade_no, "", tf.TRADE_TYPE_PAY, order.channel_trade_no, str(order.amount),
                             tf.CURRENCY, tf.ST_SUCCESS, tf.jd_time(order.paid_at)])
            else:
                rows.append([refund.out_refund_no, order.out_trade_no, tf.TRADE_TYPE_REFUND,
                             refund.channel_refund_no, str(refund.amount), tf.CURRENCY, tf.ST_SUCCESS,
                             tf.jd_time(refund.created_at)])
        data = base64.b64encode(tf.bill_csv(rows).encode("utf-8")).decode("ascii")
        return self.answer(tf.CODE_OK, "成功", [("billDate", f["billDate"]), ("billData", data)])


_CASHIER = """<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>京东支付 · 收银台</title>
<style>body{{font:16px/1.5 sans-serif;margin:0;background:#f5f5f5;text-align:center}}
header{{background:#e1251b;color:#fff;padding:12px}}.amt{{font-size:40px;font-weight:600;margin:32px 0}}
button{{display:block;width:calc(100% - 32px);margin:12px 16px;padding:14px;font-size:18px;border:0;border-radius:8px}}
#jd-pay{{background:#e1251b;color:#fff}}</style></head><body><header>京东支付收银台 (simulated)</header>
<div class="amt" id="jd-amount">¥{amount}</div><button id="jd-pay" type="button">立即支付 Pay</button>
<button id="jd-cancel" type="button">取消 Cancel</button>
<script>(function(){{var order={order},callback={callback};
function back(){{history.back();}}
function paid(){{if(callback){{location.href=callback;}}else{{back();}}}}
document.getElementById("jd-cancel").onclick=back;
document.getElementById("jd-pay").onclick=function(){{this.disabled=true;
var x=new XMLHttpRequest();x.open("POST","/_sim/app/bridge");x.setRequestHeader("Content-Type","application/json");
x.onload=paid;x.send(JSON.stringify({{channel_trade_no:order,action:"pay"}}));}};}})();</script></body></html>"""


async def cashier(request: web.Request) -> web.Response:
    """JD's H5 cashier for a GEN order (the customer's side; paycore's server never calls it)."""
    order = request.app[simkit.STATE_KEY].get(channel_trade_no=request.query.get("orderId"))
    if order is None:
        return web.Response(status=404, text="订单不存在", content_type="text/plain")
    page = _CASHIER.format(amount=f"{order.amount // 100}.{order.amount % 100:02d}",
                           order=json.dumps(order.channel_trade_no).replace("<", "\\u003c"),
                           callback=json.dumps(order.extra.get("callback_url", "")).replace("<", "\\u003c"))
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def create_app(settings: SimSettings) -> web.Application:
    app, state = simkit.base_app(settings)
    gw = JdGateway(settings, state)
    app.router.add_get("/jdpay/cashier", cashier)
    app.router.add_post("/service/fkmPay", gw.fkm_pay)
    app.router.add_post("/service/uniorder", gw.uniorder)
    app.router.add_post("/service/query", gw.query)
    app.router.add_post("/service/refund", gw.refund)
    app.router.add_post("/service/revoke", gw.revoke)
    app.router.add_post("/service/downloadBill", gw.download_bill)
    return app
