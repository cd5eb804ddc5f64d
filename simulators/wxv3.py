"""The provider side of a WeChat-v3-style API, shared by the WeChat and Douyin simulators.

:class:`V3Simulator` plays one provider described by a
:class:`~channels.wxv3.transformers.V3Profile` on top of :mod:`simulators.kit`:

* every request must carry a valid ``Authorization`` (scheme, merchant id,
  paycore's certificate serial, a timestamp within 5 minutes, SHA256withRSA
  over the five-line string with paycore's public key); anything else is
  refused ``401 {"code":"SIGN_ERROR"}``;
* every answer – errors included – is signed with the provider's key in
  ``<Prefix>-Timestamp/-Nonce/-Signature/-Serial``; the bill file itself is
  not (its hash is in the bill answer);
* orders (all methods in the profile, direct and – where the profile has
  it – service-provider mode), query, close, refund (answered PROCESSING,
  completed ``extra.refund_delay`` seconds later, default 0.05, and
  notified), refund query, the trade bill and its download;
* notifications are AEAD_AES_256_GCM resources under the APIv3 key, signed
  like answers; a payment event is ``TRANSACTION.SUCCESS`` (a declined
  in-app payment, which the real providers do not notify, is sent as
  ``TRANSACTION.PAYERROR`` because simkit's customer flow notifies declines);
  the id of an event is stable, so re-deliveries carry the same id.

The bill of ``bill_date`` lists simkit's statement rows of that date, which
simkit counts in UTC days (the real bills use China time); row times are
written in China time.

Behaviour follows :class:`simulators.kit.Scenario` by amount; the codepay
(barcode) side is WeChat's own and lives in ``channels.wechatpay.simulator``.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import time
from datetime import date, datetime, timezone
from functools import partial
from typing import Any, Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from simulators import kit as simkit
from channels.base import Method
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings
from channels.wxv3 import crypto
from channels.wxv3.transformers import (
    BILL_HEADER, BILL_SUMMARY_HEADER, CST, V3Profile, bill_field, fen_to_yuan, rfc3339,
)

Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]

_OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")

TRADE_TYPES = {Method.BARCODE: "MICROPAY", Method.QR: "NATIVE", Method.JSAPI: "JSAPI", Method.H5: "MWEB",
               Method.APP: "APP"}
STATE_DESC = {
    OrderState.SUCCESS: "支付成功", OrderState.REFUND: "转入退款", OrderState.NOTPAY: "未支付",
    OrderState.CLOSED: "已关闭", OrderState.REVOKED: "已撤销（付款码支付）",
    OrderState.USERPAYING: "用户支付中（付款码支付）", OrderState.PAYERROR: "支付失败（余额不足）",
}


def error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class V3Simulator:
    """One simulated provider: ``.app`` is the aiohttp application, ``.state`` simkit's order book."""

    def __init__(self, settings: SimSettings, profile: V3Profile, *, code_url_prefix: str, h5_url_prefix: str,
                 prepay_prefix: str, trade_no_prefix: str, refund_no_prefix: str, download_path: str) -> None:
        self.settings, self.profile = settings, profile
        self.code_url_prefix, self.h5_url_prefix, self.prepay_prefix = code_url_prefix, h5_url_prefix, prepay_prefix
        self.trade_no_prefix, self.refund_no_prefix = trade_no_prefix, refund_no_prefix
        self.download_path = download_path
        self.app, self.state = simkit.base_app(settings)
        self.key = crypto.load_private_key(settings.provider_private_key_file)
        self.paycore_key = crypto.load_public_key(settings.paycore_public_key_file)
        self.aead = crypto.aes_key(settings.secret.get_bytes())
        self.refund_delay = float(settings.extra.get("refund_delay", 0.05))
        self.bills: dict[str, bytes] = {}
        self.state.notify_builder = self.payment_notification
        self.state.refund_notify_builder = self.refund_notification

        self.prefixes: list[tuple[str, bool]] = [(profile.pay_prefix, False)]
        if profile.partner_prefix:
            self.prefixes.append((profile.partner_prefix, True))
        for prefix, partner in self.prefixes:
            for method, seg in profile.segments:
                self.add("POST", f"{prefix}/{seg}", partial(self.create_order, method=method, partner=partner))
            self.add("GET", f"{prefix}/out-trade-no/{{no}}", partial(self.query, partner=partner))
            self.add("POST", f"{prefix}/out-trade-no/{{no}}/close", partial(self.close, partner=partner))
        self.add("POST", profile.refund_path, self.refund)
        self.add("GET", f"{profile.refund_path}/{{no}}", self.query_refund)
        self.add("GET", profile.bill_path, self.bill)
        self.add("GET", download_path, self.download)

    # -- signing both ways -------------------------------------------------------
    def add(self, method: str, path: str, handler: Handler) -> None:
        async def checked(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            refusal = self.refuse_auth(request, raw)
            if refusal:
                return self.answer(401, error("SIGN_ERROR", refusal))
            data: Any = {}
            if raw:
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    data = None
                if not isinstance(data, dict):
                    return self.answer(400, error("PARAM_ERROR", "请求体不是合法的JSON对象"))
            return await handler(request, data)

        self.app.router.add_route(method, path, checked)

    def refuse_auth(self, request: web.Request, raw: bytes) -> str | None:
        """Why the provider refuses this request's Authorization, or None."""
        try:
            scheme, v = crypto.parse_authorization(request.headers.get("Authorization", ""))
        except ValueError:
            return "Authorization 格式错误"
        if scheme != self.profile.auth_scheme:
            return "认证类型错误"
        missing = [k for k in self.profile.auth_fields if not v.get(k)]
        if missing:
            return f"Authorization 缺少 {','.join(missing)}"
        if v["mchid"] != self.settings.mch_id:
            return "商户号与签名不匹配"
        if self.settings.serial_no and v["serial_no"] != self.settings.serial_no:
            return "商户证书序列号不正确"
        if not crypto.is_fresh(v["timestamp"], time.time(), 300):
            return "签名时间戳已过期"
        message = crypto.request_message(request.method, request.raw_path, v["timestamp"], v["nonce_str"], raw)
        if not crypto.rsa_verify(self.paycore_key, message, v["signature"]):
            return "签名错误，请检查后再试"
        return None

    def signed_headers(self, body: bytes) -> dict[str, str]:
        ts, nonce = str(simkit.now_ts()), crypto.new_nonce()
        p = self.profile
        return {
            p.header("Timestamp"): ts, p.header("Nonce"): nonce,
            p.header("Signature"): crypto.rsa_sign(self.key, crypto.response_message(ts, nonce, body)),
            p.header("Serial"): self.settings.provider_serial_no, "Request-ID": self.state.token(32),
        }

    def answer(self, status: int, data: dict[str, Any] | None = None) -> web.Response:
        body = orjson.dumps(data) if data is not None else b""
        headers = self.signed_headers(body)
        if body:
            headers["Content-Type"] = "application/json"
        return web.Response(status=status, body=body, headers=headers)

    # -- merchants -------------------------------------------------------------
    def refuse_merchant(self, data: Mapping[str, Any], partner: bool, *, with_app: bool) -> web.Response | None:
        mchid_key, appid_key = ("sp_mchid", "sp_appid") if partner else ("mchid", "appid")
        if data.get(mchid_key) != self.settings.mch_id:
            return self.answer(400, error("MCH_NOT_EXISTS", f"{mchid_key} 与请求签名的商户号不一致"))
        if with_app and data.get(appid_key) != self.settings.app_id:
            return self.answer(400, error("APPID_MCHID_NOT_MATCH", f"{appid_key} 与 {mchid_key} 不匹配"))
        if partner and not data.get("sub_mchid"):
            return self.answer(400, error("PARAM_ERROR", "缺少 sub_mchid"))
        return None

    @staticmethod
    def same_merchant(order: SimOrder, sub_mchid: str | None) -> bool:
        return order.extra.get("sub_mchid") == (sub_mchid or None)

    def merchant_json(self, order: SimOrder) -> dict[str, Any]:
        if order.extra.get("sub_mchid"):
            out = {"sp_appid": self.settings.app_id, "sp_mchid": self.settings.mch_id,
                   "sub_mchid": order.extra["sub_mchid"]}
            if order.extra.get("sub_appid"):
                out["sub_appid"] = order.extra["sub_appid"]
            return out
        return {"appid": self.settings.app_id, "mchid": self.settings.mch_id}

    # -- orders -------------------------------------------------------------------
    def invalid_order(self, data: dict[str, Any], method: Method) -> str | None:
        no, desc, amount = data.get("out_trade_no"), data.get("description"), data.get("amount")
        if not isinstance(no, str) or not _OUT_NO.match(no):
            return "out_trade_no 格式错误"
        if not isinstance(desc, str) or not desc:
            return "缺少 description"
        total = amount.get("total") if isinstance(amount, dict) else None
        if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
            return "amount.total 必须为正整数（分）"
        if amount.get("currency", "CNY") != "CNY":
            return "币种不支持"
        if method is not Method.BARCODE and not str(data.get("notify_url", "")).startswith(("http://", "https://")):
            return "notify_url 格式错误"
        payer = data.get("payer") if isinstance(data.get("payer"), dict) else {}
        if method is Method.JSAPI and not (payer.get("openid") or payer.get("sp_openid") or payer.get("sub_openid")):
            return "JSAPI 下单缺少 payer.openid"
        if method is Method.H5 and not (data.get("scene_info") or {}).get("h5_info"):
            return "H5 下单缺少 scene_info.h5_info"
        return None

    async def create_order(self, request: web.Request, data: dict[str, Any], *, method: Method,
                           partner: bool) -> web.Response:
        refused = self.refuse_merchant(data, partner, with_app=True)
        if refused:
            return refused
        invalid = self.invalid_order(data, method)
        if invalid:
            return self.answer(400, error("PARAM_ERROR", invalid))
        total = data["amount"]["total"]
        existing = self.state.get(data["out_trade_no"])
        if existing is not None:
            if existing.amount != total or existing.method != str(method):
                return self.answer(403, error("OUT_TRADE_NO_USED", "商户订单号重复"))
            existing.pay_calls += 1
            return self.repeat_answer(existing)
        payer = data.get("payer") or {}
        order = SimOrder(
            out_trade_no=data["out_trade_no"], amount=total, method=str(method),
            notify_url=data.get("notify_url"), channel_trade_no=self.state.new_trade_no(self.trade_no_prefix),
            scenario=Scenario.for_amount(total), mch_id=data.get("sub_mchid") or self.settings.mch_id,
            pay_calls=1)
        order.extra.update(
            sub_mchid=data.get("sub_mchid") if partner else None, sub_appid=data.get("sub_appid"),
            description=data["description"],
            profit_sharing=bool((data.get("settle_info") or {}).get("profit_sharing")),
            openid=payer.get("openid") or payer.get("sp_openid") or payer.get("sub_openid")
            or "o" + self.state.token(26))
        if method is Method.BARCODE:
            return await self.create_barcode(order, data)
        if method is Method.QR:
            order.qr_code = self.code_url_prefix + self.state.token(20)
        else:
            order.prepay_id = self.prepay_prefix + self.state.new_trade_no()
        self.state.add(order)
        await simkit.slow_if(order, self.settings)
        if order.scenario is Scenario.SYSTEM_ERROR_THEN_FAILED:
            order.state = OrderState.PAYERROR
        if order.scenario in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return self.answer(500, error("SYSTEMERROR", "系统错误"))
        return self.prepay_answer(order)

    async def create_barcode(self, order: SimOrder, data: dict[str, Any]) -> web.Response:
        """Providers without a barcode API never route here (no segment in their profile)."""
        return self.answer(404, error("NOT_FOUND", "无此接口"))

    def repeat_answer(self, order: SimOrder) -> web.Response:
        """The same order submitted again: the same prepay answer (idempotent, as the providers do)."""
        return self.prepay_answer(order)

    def prepay_answer(self, order: SimOrder) -> web.Response:
        if order.qr_code:
            return self.answer(200, {"code_url": order.qr_code})
        if order.method == Method.H5:
            return self.answer(200, {"h5_url": f"{self.h5_url_prefix}{order.prepay_id}"})
        return self.answer(200, {"prepay_id": order.prepay_id})

    def transaction_json(self, order: SimOrder) -> dict[str, Any]:
        partner = bool(order.extra.get("sub_mchid"))
        out: dict[str, Any] = {
            **self.merchant_json(order), "out_trade_no": order.out_trade_no,
            "trade_type": TRADE_TYPES[Method(order.method)], "trade_state": str(order.state),
            "trade_state_desc": STATE_DESC[order.state], "bank_type": "OTHERS", "attach": "",
            "payer": {("sp_openid" if partner else "openid"): order.extra.get("openid", "")},
            "amount": {"total": order.amount, "payer_total": order.amount, "currency": "CNY",
                       "payer_currency": "CNY"},
        }
        if order.state is not OrderState.NOTPAY:
            out["transaction_id"] = order.channel_trade_no
        if order.paid_at:
            out["success_time"] = rfc3339(order.paid_at)
        return out

    def order_in_path(self, request: web.Request, fields: Mapping[str, Any], partner: bool, *,
                      with_app: bool) -> SimOrder | web.Response:
        """The order named by ``{no}`` in the path if it is this merchant's, else the provider's refusal."""
        refused = self.refuse_merchant(fields, partner, with_app=with_app)
        if refused:
            return refused
        order = self.state.get(request.match_info["no"])
        if order is None or not self.same_merchant(order, fields.get("sub_mchid") if partner else None):
            return self.answer(404, error("ORDER_NOT_EXIST", "订单不存在"))
        return order

    async def query(self, request: web.Request, data: dict[str, Any], *, partner: bool) -> web.Response:
        order = self.order_in_path(request, request.query, partner, with_app=False)
        if isinstance(order, web.Response):
            return order
        self.state.on_query(order)
        return self.answer(200, self.transaction_json(order))

    async def close(self, request: web.Request, data: dict[str, Any], *, partner: bool) -> web.Response:
        order = self.order_in_path(request, data, partner, with_app=False)
        if isinstance(order, web.Response):
            return order
        if order.state in (OrderState.SUCCESS, OrderState.REFUND):
            return self.answer(400, error("ORDERPAID", "订单已支付"))
        if order.state is not OrderState.REVOKED:
            order.state = OrderState.CLOSED
        return self.answer(204)

    # -- refunds -------------------------------------------------------------------
    def refund_json(self, order: SimOrder, refund: SimRefund) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refund_id": refund.channel_refund_no, "out_refund_no": refund.out_refund_no,
            "transaction_id": order.channel_trade_no, "out_trade_no": order.out_trade_no,
            "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
            "create_time": rfc3339(refund.created_at), "status": refund.status, "funds_account": "AVAILABLE",
            "amount": {"total": order.amount, "refund": refund.amount, "payer_total": order.amount,
                       "payer_refund": refund.amount, "settlement_total": order.amount,
                       "settlement_refund": refund.amount, "discount_refund": 0, "currency": "CNY"},
        }
        if order.extra.get("sub_mchid"):
            out["sub_mchid"] = order.extra["sub_mchid"]
        if refund.extra.get("success_time"):
            out["success_time"] = rfc3339(refund.extra["success_time"])
        return out

    async def refund(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        order = self.state.get(data.get("out_trade_no"), data.get("transaction_id"))
        if order is None or not self.same_merchant(order, data.get("sub_mchid")):
            return self.answer(404, error("RESOURCE_NOT_EXISTS", "订单不存在"))
        no, amount = data.get("out_refund_no"), data.get("amount") or {}
        refund_amount, total = amount.get("refund"), amount.get("total")
        if not isinstance(no, str) or not _OUT_NO.match(no):
            return self.answer(400, error("PARAM_ERROR", "out_refund_no 格式错误"))
        if (isinstance(refund_amount, bool) or not isinstance(refund_amount, int) or refund_amount <= 0
                or total != order.amount):
            return self.answer(400, error("PARAM_ERROR", "退款金额或订单金额错误"))
        if no in order.refunds:  # the same refund again: its current state
            same = order.refunds[no]
            if same.amount != refund_amount:
                return self.answer(400, error("INVALID_REQUEST", "退款单号重复但金额不同"))
            return self.answer(200, self.refund_json(order, same))
        if order.state not in (OrderState.SUCCESS, OrderState.REFUND):
            return self.answer(400, error("INVALID_REQUEST", "订单未支付或已撤销，不能退款"))
        if order.scenario is Scenario.REFUND_DECLINED:
            return self.answer(403, error("NOT_ENOUGH", "基本账户余额不足，请充值后重新发起"))
        if refund_amount > order.amount - order.refunded:
            return self.answer(400, error("INVALID_REQUEST", "申请退款金额超过订单可退金额"))
        refund = SimRefund(out_refund_no=no, amount=refund_amount,
                           channel_refund_no=self.state.new_trade_no(self.refund_no_prefix), status="PROCESSING")
        refund.extra["notify_url"] = data.get("notify_url")
        order.refunds[no] = refund
        order.state = OrderState.REFUND
        self.state.spawn(self.complete_refund(order, refund))
        return self.answer(200, self.refund_json(order, refund))

    async def complete_refund(self, order: SimOrder, refund: SimRefund) -> None:
        await asyncio.sleep(self.refund_delay)
        refund.status = "SUCCESS"
        refund.extra["success_time"] = datetime.now(timezone.utc)
        builder = self.state.refund_notify_builder
        if builder is None or not refund.extra.get("notify_url"):
            return
        # simkit.notify() skips orders without a payment notify_url (codepay has none), yet the
        # refund names its own URL, so the deliveries are scheduled here with simkit's retries
        for i in range(3 if order.scenario is Scenario.DUPLICATE_NOTIFY else 1):
            self.state.spawn(self.state._deliver(builder, order, refund, delay=0.05 * i))

    async def query_refund(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        no = request.match_info["no"]
        for order in self.state.orders.values():
            if no in order.refunds and self.same_merchant(order, request.query.get("sub_mchid")):
                return self.answer(200, self.refund_json(order, order.refunds[no]))
        return self.answer(404, error("RESOURCE_NOT_EXISTS", "退款单不存在"))

    # -- notifications -------------------------------------------------------------
    def envelope(self, event_id: str, event: str, summary: str, original_type: str,
                 plain: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        nonce = self.state.token(12)
        body = orjson.dumps({
            "id": event_id, "create_time": rfc3339(datetime.now(timezone.utc)),
            "resource_type": "encrypt-resource", "event_type": event, "summary": summary,
            "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": crypto.aes_gcm_encrypt(self.aead, nonce, original_type, orjson.dumps(plain)),
                         "associated_data": original_type, "nonce": nonce},
        })
        return {**self.signed_headers(body), "Content-Type": "application/json"}, body

    def payment_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        paid = order.state in (OrderState.SUCCESS, OrderState.REFUND)
        event, summary = ("TRANSACTION.SUCCESS", "支付成功") if paid else ("TRANSACTION.PAYERROR", "支付失败")
        headers, body = self.envelope(f"EV-{order.channel_trade_no}-{event}", event, summary, "transaction",
                                      self.transaction_json(order))
        return str(order.notify_url), headers, body

    def refund_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        assert refund is not None
        status = "SUCCESS" if refund.status == "SUCCESS" else "ABNORMAL"
        plain = {
            **{k: v for k, v in self.merchant_json(order).items() if "appid" not in k},
            "out_trade_no": order.out_trade_no, "transaction_id": order.channel_trade_no,
            "out_refund_no": refund.out_refund_no, "refund_id": refund.channel_refund_no,
            "refund_status": status, "user_received_account": "支付用户零钱",
            "amount": {"total": order.amount, "refund": refund.amount, "payer_total": order.amount,
                       "payer_refund": refund.amount},
        }
        if refund.extra.get("success_time"):
            plain["success_time"] = rfc3339(refund.extra["success_time"])
        headers, body = self.envelope(f"EV-{refund.channel_refund_no}", f"REFUND.{status}", "退款成功", "refund",
                                      plain)
        return str(refund.extra["notify_url"]), headers, body

    # -- the daily trade bill ------------------------------------------------------
    def bill_text(self, rows: list[tuple[str, SimOrder, SimRefund | None]]) -> bytes:
        lines = [",".join(BILL_HEADER)]
        paid_sum = refund_sum = count = 0
        for kind, order, refund in rows:
            ids = self.merchant_json(order)
            common = [ids.get("appid") or ids.get("sp_appid", ""), self.settings.mch_id,
                      order.extra.get("sub_mchid") or "0", "", order.channel_trade_no, order.out_trade_no,
                      order.extra.get("openid", ""), TRADE_TYPES[Method(order.method)]]
            desc = order.extra.get("description", "").replace(",", " ")
            if refund is None:
                count += 1
                paid_sum += order.amount
                when = order.paid_at or order.created_at
                state = "REVOKED" if order.state is OrderState.REVOKED else "SUCCESS"
                yuan = fen_to_yuan(order.amount)
                fields = [_cst(when), *common, state, "OTHERS", "CNY", yuan, "0.00", "0", "0", "0.00", "0.00",
                          "", "", desc, "", "0.00000", "0.60%", yuan, "0.00", ""]
            else:
                refund_sum += refund.amount
                when = refund.extra.get("success_time") or refund.created_at
                yuan = fen_to_yuan(refund.amount)
                fields = [_cst(when), *common, "REFUND", "OTHERS", "CNY", "0.00", "0.00",
                          refund.channel_refund_no, refund.out_refund_no, yuan, "0.00", "ORIGINAL", "SUCCESS",
                          desc, "", "0.00000", "0.60%", "0.00", yuan, ""]
            lines.append(",".join(bill_field(f) for f in fields))
        lines.append(",".join(BILL_SUMMARY_HEADER))
        lines.append(",".join(bill_field(f) for f in (
            str(count), fen_to_yuan(paid_sum), fen_to_yuan(refund_sum), "0.00", "0.00000", fen_to_yuan(paid_sum),
            fen_to_yuan(refund_sum))))
        return ("\r\n".join(lines) + "\r\n").encode()

    async def bill(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        day = request.query.get("bill_date", "")
        try:
            date.fromisoformat(day)
        except ValueError:
            return self.answer(400, error("PARAM_ERROR", "bill_date 格式应为 YYYY-MM-DD"))
        sub = request.query.get("sub_mchid")
        rows = [r for r in self.state.statement_rows(day) if not sub or r[1].extra.get("sub_mchid") == sub]
        if not rows:
            return self.answer(400, error("NO_STATEMENT_EXIST", "要下载的账单不存在"))
        raw = self.bill_text(rows)
        token = self.state.token(32)
        self.bills[token] = raw
        return self.answer(200, {"hash_type": "SHA1", "hash_value": hashlib.sha1(raw).hexdigest(),
                                 "download_url": f"{request.url.origin()}{self.download_path}?token={token}"})

    async def download(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        raw = self.bills.get(request.query.get("token", ""))
        if raw is None:
            return self.answer(404, error("RESOURCE_NOT_EXISTS", "账单下载链接无效或已过期"))
        return web.Response(status=200, body=raw, content_type="text/plain", charset="utf-8")


def _cst(dt: datetime) -> str:
    return dt.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")
