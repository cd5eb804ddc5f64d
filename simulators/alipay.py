"""Alipay's side of OpenAPI v2, for tests and load tests.

``/gateway.do`` (GET or POST form) plays the gateway: it checks the common
parameters and paycore's RSA2 signature as Alipay does (a refusal is an
*unsigned* 40001/40002 answer, e.g. ``isv.invalid-signature``), runs the
method, and signs its answer with the simulator's key over the raw
``<method>_response`` text. Answers rotate through three JSON layouts
(compact; spaced with ``sign`` first; indented with ASCII escapes and ``\\/``)
so a client that re-serialises before verifying fails at once.

h5 and app orders are signed by paycore and opened by the buyer's client,
never sent by paycore's server: the client's step is ``GET /gateway.do?<pay_url
query>`` (wap, answered with an HTML cashier page) or ``POST /gateway.do``
with the app's order string as the form (answered with a signed
``alipay_trade_app_pay_response``). Only then does the trade exist; after that
``POST /_sim/customer/pay {"out_trade_no": …}`` pays it like any other order.

Scenario by ``amount % 100`` (simulators.kit.Scenario) as Alipay words it:
11/12 answer 10003 and WAIT_BUYER_PAY; 13 ACQ.BUYER_BALANCE_NOT_ENOUGH;
14 and 19 answer 20000 (14: paid; 19: not, its trade reads TRADE_CLOSED);
15 answers late; 16/17 duplicate / early notifications; 18 refuses refunds
with ACQ.SELLER_BALANCE_NOT_ENOUGH. The first cancel of a 14 answers
ACQ.SYSTEM_ERROR with ``retry_flag=Y`` (Alipay's "call cancel again").

It also plays the web authorisation (openauth.alipay.com):
``GET /oauth2/publicAppAuthorize.htm`` (auth_base, silent: straight back to
``redirect_uri?app_id=…&source=alipay_wallet&scope=auth_base&auth_code=…&state=…``)
and the gateway method ``alipay.system.oauth.token`` (grant_type
authorization_code: the code → ``user_id``; a spent or unknown code is an
``error_response`` 40002 ``isv.code-invalid``).

Profit sharing (royalty.relation.bind, order.settle in async mode,
order.settle.query) and transfers (fund.trans.uni.transfer, common.query) play
:mod:`simulators.sharekit`'s book: a trade paid with ``royalty_freeze`` can be
shared up to ``extra.max_share_percent`` (default 30 %, the contract's ratio) of
its amount, above that ACQ.ALLOC_AMOUNT_VALIDATE_ERROR; a receiver never bound →
ACQ.ROYALTY_RECEIVER_INVALID; a receiver amount ending in 14 → recorded, answered
20000. Shares finish ``extra.settle_delay`` seconds later (default 0.05).
Transfers are instant: to an account containing ``frozen`` →
PAYEE_ACCOUNT_STATUS_ERROR, a name ``不符`` → PAYEE_USERINFO_ERROR, amount 13 →
PAYER_BALANCE_NOT_ENOUGH; 14 → done, answered 20000; 19 → failed, answered
SYSTEM_ERROR; 15 → answered late.

Trade states: unpaid → WAIT_BUYER_PAY; paid → TRADE_SUCCESS; fully refunded
→ TRADE_CLOSED with ``send_pay_date``; closed, declined or cancelled →
TRADE_CLOSED without it. Bills are served as Alipay serves them: a short-lived
``bill_download_url`` to a zip of GBK CSVs (see transformers.bill_files);
days are Beijing days, as at Alipay (simkit's statement rows count them so).
"""
from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import secrets
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from simulators import kit as simkit
from channels.alipay import transformers as t
from channels.alipay import sharing as sh
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings, SimState
from simulators.sharekit import BOOK_KEY, ShareBook, SimShare, SimTransfer

#: what Alipay's barcode (付款码) looks like; anything else is ACQ.PAYMENT_AUTH_CODE_INVALID
AUTH_CODE_RE = re.compile(r"^(2[5-9]|30)[0-9]{14,22}\Z")
BUYER_ID = "2088102177846875"
BUYER_LOGON_ID = "159****5620"

Body = dict[str, Any]


def ok(**fields: Any) -> Body:
    return {"code": t.CODE_SUCCESS, "msg": "Success", **fields}


def fail(sub_code: str, sub_msg: str, **fields: Any) -> Body:
    return {"code": t.CODE_BUSINESS, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg, **fields}


def refused(code: str, sub_code: str, sub_msg: str) -> Body:
    msg = "Missing Required Arguments" if code == "40001" else "Invalid Arguments"
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


UNKNOWN: Body = {"code": t.CODE_UNKNOWN, "msg": "Service Currently Unavailable",
                 "sub_code": "isp.unknow-error", "sub_msg": "系统繁忙"}
NOT_EXIST = (t.TRADE_NOT_EXIST, "交易不存在")


class AlipaySim:
    def __init__(self, settings: SimSettings, state: SimState) -> None:
        self.settings = settings
        self.state = state
        self.key = t.load_private_key(Path(settings.provider_private_key_file).read_text())
        self.paycore_key = t.load_public_key(Path(settings.paycore_public_key_file).read_text())
        self.styles = itertools.cycle((0, 1, 2))
        self.bills: dict[str, date] = {}
        self.tombstones: set[str] = set()     # out_trade_nos cancelled before Alipay saw them      # fileId → bill day (Alipay's URLs are one-off and short-lived)
        self.handlers: dict[str, Callable[[Body, dict[str, str], web.Request], Awaitable[Body]]] = {
            t.PAY: self.trade_pay, t.PRECREATE: self.precreate, t.CREATE: self.create,
            t.WAP_PAY: self.open_order, t.APP_PAY: self.open_order, t.QUERY: self.query,
            t.CANCEL: self.cancel, t.CLOSE: self.close, t.REFUND: self.refund,
            t.REFUND_QUERY: self.refund_query, t.BILL_URL: self.bill_url, t.OAUTH_TOKEN: self.oauth_token,
            sh.RELATION_BIND: self.relation_bind, sh.SETTLE: self.settle, sh.SETTLE_QUERY: self.settle_query,
            sh.TRANSFER: self.transfer, sh.TRANSFER_QUERY: self.transfer_query,
        }
        self.book = ShareBook(int(settings.extra.get("max_share_percent", 30)))
        self.settle_delay = float(settings.extra.get("settle_delay", 0.05))
        # a user id: 2088 and twelve digits, like Alipay's
        self.oauth = simkit.OAuthServer(settings, lambda: "2088" + "".join(secrets.choice("0123456789")
                                                                             for _ in range(12)))

    async def oauth_authorize(self, request: web.Request) -> web.StreamResponse:
        return self.oauth.authorize(request, client_id="app_id", scope="auth_base", code_param="auth_code",
                                    more={"app_id": self.settings.app_id, "source": "alipay_wallet",
                                          "scope": "auth_base"})

    async def oauth_token(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        if params.get("grant_type") != "authorization_code":
            return refused("40002", "isv.grant-type-invalid", "不支持的grant_type")
        user_id = self.oauth.redeem(params.get("code", ""))
        if user_id is None:
            return refused("40002", "isv.code-invalid", "授权码code无效")
        return {"user_id": user_id, "access_token": "authbseB" + secrets.token_hex(16), "expires_in": 1296000,
                "refresh_token": "authbseB" + secrets.token_hex(16), "re_expires_in": 2592000,
                "auth_start": datetime.now(t.CST).strftime(t.TIME_FORMAT)}

    # -- the gateway ----------------------------------------------------------------
    def answer(self, api_method: str, body: Body, *, signed: bool = True) -> web.Response:
        # the token call answers its refusals as error_response (its success carries no code)
        failed_token = api_method == t.OAUTH_TOKEN and "user_id" not in body
        key = t.response_key(api_method) if api_method in self.handlers and not failed_token else "error_response"
        sign_fn = (lambda raw: t.rsa2_sign(self.key, raw)) if signed else None
        text = t.render_answer(key, body, sign_fn, style=next(self.styles))
        return web.Response(text=text, content_type="application/json", charset="utf-8")

    def refusal(self, params: dict[str, str]) -> Body | None:
        """The gateway's own checks, before any business: Alipay's 40001/40002 answers."""
        for name in ("app_id", "method", "sign_type", "sign", "timestamp", "charset", "version"):
            if not params.get(name):
                return refused("40001", f"isv.missing-{name.replace('_', '-')}", f"缺少{name}参数")
        if params["method"] not in self.handlers:
            return refused("40002", "isv.invalid-method", "不存在的方法名")
        if params["app_id"] != self.settings.app_id:
            return refused("40002", "isv.invalid-app-id", "无效的AppID参数")
        if params["sign_type"] != t.SIGN_TYPE:
            return refused("40002", "isv.invalid-signature-type", "无效的签名类型")
        if params["charset"].lower() != t.CHARSET:
            return refused("40002", "isv.invalid-charset", "字符集错误")
        if t.parse_beijing_time(params["timestamp"]) is None:
            return refused("40002", "isv.invalid-timestamp", "非法的时间戳参数")
        if not t.rsa2_verify(self.paycore_key, t.request_sign_content(params), params["sign"]):
            return refused("40002", "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配")
        return None

    async def gateway(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in request.query.items()}
        if request.method == "POST":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        api_method = params.get("method", "")
        body = self.refusal(params)
        if body is None:
            try:
                # the token call's parameters are plain form fields: it has no biz_content
                biz = {} if api_method == t.OAUTH_TOKEN else json.loads(params.get("biz_content") or "")
                if not isinstance(biz, dict):
                    raise ValueError
            except ValueError:
                body = refused("40002", "isv.invalid-parameter", "biz_content 不是 JSON 对象")
            else:
                body = await self.handlers[api_method](biz, params, request)
        if api_method == t.WAP_PAY:
            return self.cashier_page(body)
        return self.answer(api_method, body, signed=body.get("code") not in t.GATEWAY_REFUSALS)

    # -- orders ------------------------------------------------------------------------
    def new_order(self, biz: Body, params: dict[str, str], method: str) -> SimOrder | Body:
        out_trade_no = str(biz.get("out_trade_no", ""))
        if not t.OUT_NO_RE.match(out_trade_no) or not biz.get("subject"):
            return fail("ACQ.INVALID_PARAMETER", "参数无效: out_trade_no / subject")
        try:
            amount = t.yuan_to_fen(str(biz.get("total_amount", "")))
        except ValueError:
            return fail("ACQ.INVALID_PARAMETER", "参数无效: total_amount")
        if amount <= 0:
            return fail("ACQ.INVALID_PARAMETER", "参数无效: total_amount")
        order = SimOrder(out_trade_no=out_trade_no, amount=amount, method=method,
                         notify_url=params.get("notify_url") or None,
                         channel_trade_no=self.state.new_trade_no(), scenario=Scenario.for_amount(amount),
                         mch_id=self.settings.mch_id, auth_code=biz.get("auth_code"))
        order.extra.update(subject=str(biz["subject"]), sub_merchant=biz.get("sub_merchant"),
                           app_auth_token=params.get("app_auth_token"), store_id=biz.get("store_id"),
                           terminal_id=biz.get("terminal_id"), buyer_id=biz.get("buyer_id"),
                           profit_sharing=(biz.get("extend_params") or {}).get("royalty_freeze") == "true")
        return order

    def paid_fields(self, o: SimOrder) -> Body:
        amount = t.fen_to_yuan(o.amount)
        return {"trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no, "buyer_logon_id": BUYER_LOGON_ID,
                "total_amount": amount, "receipt_amount": amount, "buyer_pay_amount": amount,
                "point_amount": "0.00", "invoice_amount": amount,
                "gmt_payment": t.beijing_time(o.paid_at or datetime.now(timezone.utc)),
                "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": amount}],
                "buyer_user_id": BUYER_ID}

    def pay_answer(self, o: SimOrder) -> Body:
        ids = {"trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no}
        match o.state:
            case OrderState.SUCCESS | OrderState.REFUND:
                return ok(**self.paid_fields(o))
            case OrderState.USERPAYING:
                return {"code": t.CODE_PAYING, "msg": "order success pay inprocess", **ids,
                        "buyer_logon_id": BUYER_LOGON_ID, "total_amount": t.fen_to_yuan(o.amount)}
            case OrderState.PAYERROR:
                return fail("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足", **ids)
            case OrderState.CLOSED | OrderState.REVOKED:
                return fail("ACQ.TRADE_HAS_CLOSE", "交易已经关闭", **ids)
            case OrderState.NOTPAY:
                return fail(t.TRADE_STATUS_ERROR, "交易状态不合法", **ids)

    async def trade_pay(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        if biz.get("scene") != "bar_code":
            return fail("ACQ.INVALID_PARAMETER", "参数无效: scene")
        if not AUTH_CODE_RE.match(str(biz.get("auth_code", ""))):
            return fail("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款")
        if str(biz.get("out_trade_no", "")) in self.tombstones:
            return fail("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        existing = self.state.get(str(biz.get("out_trade_no", "")))
        if existing is not None:          # Alipay's pay is idempotent per out_trade_no
            existing.pay_calls += 1
            return self.pay_answer(existing)
        order = self.new_order(biz, params, "barcode")
        if not isinstance(order, SimOrder):
            return order
        order.pay_calls = 1
        simkit.barcode_outcome(order)
        if order.scenario is Scenario.PAY_AFTER_REVERSE:
            # reaches the books later, unless trade.cancel left a tombstone meanwhile
            simkit.land_late(self.state, order, lambda o: o.out_trade_no in self.tombstones)
            return dict(UNKNOWN)
        self.state.add(order)
        await self.state.barcode_notifications(order)
        await simkit.slow_if(order, self.settings)
        if simkit.answers_unknown(order):
            return dict(UNKNOWN)
        return self.pay_answer(order)

    async def _order(self, biz: Body, params: dict[str, str], method: str,
                     answer: Callable[[SimOrder], Body]) -> Body:
        """precreate / create / the client opening a wap or app order: an unpaid trade."""
        existing = self.state.get(str(biz.get("out_trade_no", "")))
        if existing is not None:
            if existing.state in (OrderState.SUCCESS, OrderState.REFUND):
                return fail(t.TRADE_HAS_SUCCESS, "交易已被支付", trade_no=existing.channel_trade_no)
            if existing.state is not OrderState.NOTPAY:
                return self.pay_answer(existing)
            if existing.method != method or t.fen_to_yuan(existing.amount) != biz.get("total_amount"):
                return fail("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            return answer(existing)
        order = self.new_order(biz, params, method)
        if not isinstance(order, SimOrder):
            return order
        if method == "qr":
            order.qr_code = f"https://qr.alipay.com/bax0{self.state.token(20)}"
        self.state.add(order)
        await simkit.slow_if(order, self.settings)
        return answer(order)

    def invisible(self, o: SimOrder) -> bool:
        """Not seen by query/close: an unscanned QR_PAYABLE_AFTER_CLOSE QR, or a lagging query."""
        return (o.scenario is Scenario.QR_PAYABLE_AFTER_CLOSE and o.state in (OrderState.NOTPAY, OrderState.CLOSED)) \
            or self.state.lagging(o)

    async def precreate(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        return await self._order(biz, params, "qr",
                                 lambda o: ok(out_trade_no=o.out_trade_no, qr_code=o.qr_code))

    async def create(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        if not (biz.get("buyer_id") or biz.get("buyer_open_id")):
            return fail("ACQ.INVALID_PARAMETER", "参数无效: buyer_id")
        return await self._order(biz, params, "jsapi",
                                 lambda o: ok(out_trade_no=o.out_trade_no, trade_no=o.channel_trade_no))

    async def open_order(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        method = "h5" if params["method"] == t.WAP_PAY else "app"
        return await self._order(biz, params, method, lambda o: ok(
            out_trade_no=o.out_trade_no, trade_no=o.channel_trade_no, total_amount=t.fen_to_yuan(o.amount),
            seller_id=self.settings.mch_id, merchant_order_no=o.out_trade_no))

    def cashier_page(self, body: Body) -> web.Response:
        """What the buyer's browser shows for a wap order: the cashier, or the error."""
        if body.get("code") == t.CODE_SUCCESS:
            title, detail = "支付宝 - 收银台", (f'<p id="out_trade_no">{html.escape(body["out_trade_no"])}</p>'
                                             f'<p id="total_amount">{html.escape(body["total_amount"])}</p>')
        else:
            title, detail = "支付宝 - 错误", f'<p id="sub_code">{html.escape(str(body.get("sub_code")))}</p>'
        page = f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>" \
               f"<body>{detail}</body></html>"
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    # -- trades ------------------------------------------------------------------------
    def find(self, biz: Body) -> SimOrder | None:
        return self.state.get(out_trade_no=biz.get("out_trade_no"), channel_trade_no=biz.get("trade_no"))

    @staticmethod
    def trade_status(o: SimOrder) -> str:
        match o.state:
            case OrderState.NOTPAY | OrderState.USERPAYING:
                return "WAIT_BUYER_PAY"
            case OrderState.SUCCESS:
                return "TRADE_SUCCESS"
            case OrderState.REFUND:
                return "TRADE_CLOSED" if o.refunded >= o.amount else "TRADE_SUCCESS"
            case OrderState.PAYERROR | OrderState.CLOSED | OrderState.REVOKED:
                return "TRADE_CLOSED"

    @staticmethod
    def stated_amount(o: SimOrder) -> str:
        return t.fen_to_yuan(simkit.stated_amount(o))

    async def query(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        o = self.find(biz)
        if o is None or self.invisible(o):
            return fail(*NOT_EXIST)
        self.state.on_query(o)
        body = ok(trade_no=o.channel_trade_no, out_trade_no=o.out_trade_no, buyer_logon_id=BUYER_LOGON_ID,
                  trade_status=self.trade_status(o), total_amount=self.stated_amount(o), buyer_user_id=BUYER_ID)
        if o.state in (OrderState.SUCCESS, OrderState.REFUND) and o.paid_at:
            amount = self.stated_amount(o)
            body.update(send_pay_date=t.beijing_time(o.paid_at), receipt_amount=amount, buyer_pay_amount=amount)
        return body

    async def cancel(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        o = self.find(biz)
        if o is None or (o.scenario is Scenario.QR_PAYABLE_AFTER_CLOSE and self.invisible(o)):
            # nothing to cancel yet; the out_trade_no is dead from now on (a tombstone)
            self.tombstones.add(str(biz.get("out_trade_no", "")))
            if o is not None:
                o.state = OrderState.REVOKED
            return fail(*NOT_EXIST, retry_flag="N")
        o.reverse_calls += 1
        ids = {"trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no}
        if o.scenario is Scenario.SYSTEM_ERROR and o.reverse_calls == 1:
            return fail(t.SYSTEM_ERROR, "系统错误", retry_flag="Y", **ids)
        if o.state in (OrderState.SUCCESS, OrderState.REFUND):
            o.extra.update(cancel_action="refund", cancel_refund=o.amount - o.refunded,
                           cancelled_at=datetime.now(timezone.utc))
        elif o.state is not OrderState.REVOKED:
            o.extra.setdefault("cancel_action", "close")
        o.state = OrderState.REVOKED
        action = o.extra["cancel_action"]
        extra = {"gmt_refund_pay": t.beijing_time(o.extra["cancelled_at"])} if action == "refund" else {}
        return ok(retry_flag="N", action=action, **ids, **extra)

    async def close(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        o = self.find(biz)
        if o is None or self.invisible(o):
            return fail(*NOT_EXIST)     # and an unscanned QR stays payable
        ids = {"trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no}
        if o.state in (OrderState.SUCCESS, OrderState.REFUND):
            return fail(t.TRADE_STATUS_ERROR, "交易状态不合法", **ids)
        if o.state in (OrderState.NOTPAY, OrderState.USERPAYING):
            o.state = OrderState.CLOSED
        return ok(**ids)

    async def refund(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        o = self.find(biz)
        if o is None:
            return fail(*NOT_EXIST)
        try:
            amount = t.yuan_to_fen(str(biz.get("refund_amount", "")))
        except ValueError:
            return fail("ACQ.INVALID_PARAMETER", "参数无效: refund_amount")
        no = str(biz.get("out_request_no") or o.out_trade_no)
        ids = {"trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no, "buyer_logon_id": BUYER_LOGON_ID,
               "buyer_user_id": BUYER_ID}
        done = o.refunds.get(no)
        if done is not None:              # a repeat: Alipay answers it again without moving money
            if done.amount != amount:
                return fail("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致")
            return ok(fund_change="N", refund_fee=t.fen_to_yuan(o.refunded), **ids)
        if o.state not in (OrderState.SUCCESS, OrderState.REFUND):
            return fail(t.TRADE_STATUS_ERROR, "交易状态不合法")
        if o.scenario is Scenario.REFUND_DECLINED:
            return fail("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足")
        if amount <= 0 or not t.OUT_NO_RE.match(no):
            return fail("ACQ.INVALID_PARAMETER", "参数无效")
        if o.refunded + amount > o.amount:
            return fail("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        r = SimRefund(out_refund_no=no, amount=amount, channel_refund_no=self.state.new_trade_no())
        o.refunds[no] = r
        o.state = OrderState.REFUND
        if simkit.delay_refund(self.state, o, r):   # done, but the answer is lost; queries see it later
            return dict(UNKNOWN)
        self.state.notify(o, r)
        return ok(fund_change="Y", refund_fee=t.fen_to_yuan(o.refunded),
                  gmt_refund_pay=t.beijing_time(r.created_at), **ids)

    async def refund_query(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        o = self.find(biz)
        if o is None:
            return fail(*NOT_EXIST)
        r = o.refunds.get(str(biz.get("out_request_no") or o.out_trade_no))
        if r is None or r.status != "SUCCESS" or not simkit.refund_visible(r):
            return ok()                    # Alipay: no data means no refund was made
        return ok(trade_no=o.channel_trade_no, out_trade_no=o.out_trade_no, out_request_no=r.out_refund_no,
                  total_amount=t.fen_to_yuan(o.amount), refund_amount=t.fen_to_yuan(r.amount),
                  refund_status="REFUND_SUCCESS", gmt_refund_pay=t.beijing_time(r.created_at))

    # -- profit sharing (交易分账) --------------------------------------------------------
    async def relation_bind(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        receivers = biz.get("receiver_list")
        if not isinstance(receivers, list) or not receivers or not biz.get("out_request_no"):
            return fail("ACQ.INVALID_PARAMETER", "参数无效: receiver_list / out_request_no")
        for r in receivers:
            kind, account = (r.get("type"), str(r.get("account") or "")) if isinstance(r, dict) else (None, "")
            if kind not in ("userId", "loginName", "openId") or not account:
                return fail("ACQ.INVALID_RECEIVER_TYPE", "分账收款方类型参数非法")
            if kind == "loginName" and not r.get("name"):
                return fail("ACQ.INVALID_PARAMETER", "登录号类型的接收方必须填写姓名")
            if "invalid" in account:
                return fail("ACQ.USER_NOT_EXIST", "分账接收方不存在")
        self.book.receivers.update((r["type"], str(r["account"])) for r in receivers)
        return ok(result_code="SUCCESS")

    def settle_answer(self, sh_: SimShare) -> Body:
        return ok(trade_no=sh_.order.channel_trade_no, settle_no=sh_.order_id)

    async def settle(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        no = str(biz.get("out_request_no") or "")
        if no in self.book.shares:
            return self.settle_answer(self.book.shares[no])
        order = self.state.get(channel_trade_no=biz.get("trade_no"))
        if order is None:
            return fail(*NOT_EXIST)
        if order.state not in (OrderState.SUCCESS, OrderState.REFUND) or not order.extra.get("profit_sharing"):
            return fail(t.TRADE_STATUS_ERROR, "交易状态不合法或未冻结分账资金")
        if self.book.finished(order):
            return fail("ACQ.TRADE_SETTLE_ERROR", "交易分账已完结")
        raw = biz.get("royalty_parameters") or []
        if not isinstance(raw, list) or not t.OUT_NO_RE.match(no):
            return fail("ACQ.INVALID_PARAMETER", "参数无效: royalty_parameters / out_request_no")
        lines = []
        for r in raw:
            try:
                amount = t.yuan_to_fen(str(r.get("amount", ""))) if isinstance(r, dict) else 0
            except ValueError:
                amount = 0
            if amount <= 0:
                return fail("ACQ.INVALID_PARAMETER", "参数无效: amount")
            if (r.get("trans_in_type"), str(r.get("trans_in"))) not in self.book.receivers:
                return fail(sh.RECEIVER_INVALID, "收入方不在分账关系内")
            lines.append({"type": r["trans_in_type"], "account": str(r["trans_in"]), "amount": amount,
                          "description": str(r.get("desc") or ""), "result": "PROCESSING", "fail_reason": None})
        if sum(line["amount"] for line in lines) > self.book.shareable(order):
            return fail(sh.ALLOC_AMOUNT_ERROR, "分账金额超过最大可分账金额")
        finish = (biz.get("extend_params") or {}).get("royalty_finish") == "true"
        share = SimShare(out_order_no=no, order=order, order_id=self.state.new_trade_no(), lines=lines,
                         unfreeze=not lines, finishes=finish, state="FINISHED" if not lines else "PROCESSING")
        self.book.shares[no] = share
        if lines:
            self.state.spawn(self.finish_settle(share))
        if self.book.system_error_line(lines):
            return dict(UNKNOWN)
        return self.settle_answer(share)

    async def finish_settle(self, share: SimShare) -> None:
        await asyncio.sleep(self.settle_delay)
        for line in share.lines:
            line["result"] = "SUCCESS"
        share.state = "FINISHED"

    async def settle_query(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        share = self.book.shares.get(str(biz.get("out_request_no") or ""))
        if share is None or (biz.get("trade_no") and biz["trade_no"] != share.order.channel_trade_no):
            return fail(sh.SETTLE_NOT_EXIST, "分账请求不存在")
        return ok(out_request_no=share.out_order_no, operation_dt=t.beijing_time(datetime.now(timezone.utc)),
                  royalty_detail_list=[{"operation_type": "transfer", "trans_in": line["account"],
                                        "trans_in_type": line["type"], "amount": t.fen_to_yuan(line["amount"]),
                                        "state": line["result"]} for line in share.lines])

    # -- transfers (单笔转账) --------------------------------------------------------------
    def transfer_answer(self, tr: SimTransfer) -> Body:
        return ok(out_biz_no=tr.out_no, order_id=tr.bill_no, pay_fund_order_id=tr.bill_no, status=tr.state,
                  trans_date=t.beijing_time(tr.created_at))

    async def transfer(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        self.book.transfer_calls += 1
        no, payee = str(biz.get("out_biz_no") or ""), biz.get("payee_info")
        if no in self.book.transfers:
            return self.transfer_answer(self.book.transfers[no])
        if (biz.get("product_code") != sh.PRODUCT_CODE or biz.get("biz_scene") != sh.BIZ_SCENE
                or not isinstance(payee, dict) or not payee.get("identity") or not t.OUT_NO_RE.match(no)):
            return fail("INVALID_PARAMETER", "参数有误")
        if payee.get("identity_type") not in ("ALIPAY_USER_ID", "ALIPAY_LOGON_ID"):
            return fail("INVALID_PARAMETER", "参数有误: identity_type")
        if payee["identity_type"] == "ALIPAY_LOGON_ID" and not payee.get("name"):
            return fail("PAYEE_NAME_EMPTY", "登录号收款必须填写收款方姓名")
        try:
            amount = t.yuan_to_fen(str(biz.get("trans_amount", "")))
        except ValueError:
            return fail("INVALID_PARAMETER", "参数有误: trans_amount")
        sc = Scenario.for_amount(amount)
        if sc is Scenario.DECLINED:
            return fail("PAYER_BALANCE_NOT_ENOUGH", "付款方余额不足")
        if "frozen" in str(payee["identity"]):
            return fail("PAYEE_ACCOUNT_STATUS_ERROR", "收款方账户状态异常")
        if payee.get("name") == "不符":
            return fail("PAYEE_USERINFO_ERROR", "收款方姓名与账户不一致")
        tr = SimTransfer(out_no=no, amount=amount, account=str(payee["identity"]), bill_no=self.state.new_trade_no(),
                         name=payee.get("name"))
        self.book.transfer_outcome(tr)
        self.book.complete(tr)                # to an Alipay account: instant
        self.book.transfers[no] = tr
        await simkit.slow_if(sc, self.settings)
        if sc is Scenario.SYSTEM_ERROR:
            return dict(UNKNOWN)
        if sc is Scenario.SYSTEM_ERROR_THEN_FAILED:
            return fail("SYSTEM_ERROR", "系统繁忙")
        return self.transfer_answer(tr)

    async def transfer_query(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        tr = self.book.transfers.get(str(biz.get("out_biz_no") or ""))
        if biz.get("product_code") != sh.PRODUCT_CODE or biz.get("biz_scene") != sh.BIZ_SCENE:
            return fail("INVALID_PARAMETER", "参数有误: product_code / biz_scene")
        if tr is None:
            return fail(sh.ORDER_NOT_EXIST, "转账订单不存在")
        tr.queries += 1
        body = ok(order_id=tr.bill_no, pay_fund_order_id=tr.bill_no, out_biz_no=tr.out_no,
                  trans_amount=t.fen_to_yuan(tr.amount), status=tr.state, pay_date=t.beijing_time(tr.created_at))
        if tr.fail_reason:
            body.update(error_code=tr.fail_reason, fail_reason="转账失败")
        return body

    # -- notifications -----------------------------------------------------------------
    def notice(self, o: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        """One trade_status_sync form, signed over all but sign/sign_type. Retries of one
        event keep its notify_id, as Alipay's do."""
        status = self.trade_status(o)
        holder = refund.extra if refund else o.extra
        now = datetime.now(timezone.utc)
        amount = self.stated_amount(o)
        params = {
            "notify_time": t.beijing_time(now), "notify_type": "trade_status_sync",
            "notify_id": holder.setdefault(f"notify_id:{status}", self.state.token(32)),
            "app_id": self.settings.app_id, "charset": t.CHARSET, "version": t.VERSION, "sign_type": t.SIGN_TYPE,
            "trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no, "buyer_id": BUYER_ID,
            "buyer_logon_id": BUYER_LOGON_ID, "seller_id": self.settings.mch_id, "trade_status": status,
            "total_amount": amount, "subject": str(o.extra.get("subject", "")),
            "gmt_create": t.beijing_time(o.created_at),
        }
        if o.paid_at and o.state in (OrderState.SUCCESS, OrderState.REFUND):
            params.update(receipt_amount=amount, buyer_pay_amount=amount, gmt_payment=t.beijing_time(o.paid_at))
        else:
            params["gmt_close"] = t.beijing_time(now)
        if refund:
            params.update(out_biz_no=refund.out_refund_no, refund_fee=t.fen_to_yuan(o.refunded),
                          gmt_refund=t.beijing_time(refund.created_at))
        params["sign"] = t.rsa2_sign(self.key, t.notify_sign_content(params))
        assert o.notify_url is not None
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return o.notify_url, headers, urlencode(params).encode()

    # -- the bill ----------------------------------------------------------------------
    async def bill_url(self, biz: Body, params: dict[str, str], request: web.Request) -> Body:
        if biz.get("bill_type") not in ("trade", "signcustomer"):
            return fail("ACQ.INVALID_PARAMETER", "参数无效: bill_type")
        try:
            day = date.fromisoformat(str(biz.get("bill_date", "")))
        except ValueError:
            return fail("ACQ.INVALID_PARAMETER", "参数无效: bill_date")
        if day > datetime.now(simkit.CHINA).date():   # Beijing's today: the bill of a day not begun yet
            return fail(t.BILL_NOT_EXIST, "账单不存在")
        file_id = self.state.token(24)
        self.bills[file_id] = day
        ymd, who = day.strftime("%Y%m%d"), self.settings.mch_id
        query = urlencode({"bizType": biz["bill_type"], "userId": who, "fileType": "csv.zip", "bizDates": ymd,
                           "downloadFileName": f"{who}_{ymd}.csv.zip", "fileId": file_id,
                           "timestamp": simkit.now_ts()})
        return ok(bill_download_url=f"{request.url.origin()}/downloadBillFile.resource?{query}")

    def bill_rows(self, day: date) -> list[t.BillRow]:
        rows: list[t.BillRow] = []
        for kind, o, r in self.state.statement_rows(day.isoformat()):
            common = {"trade_no": o.channel_trade_no, "out_trade_no": o.out_trade_no,
                      "subject": str(o.extra.get("subject", "")), "created": o.created_at.astimezone(t.CST),
                      "order_amount": o.amount, "store_id": o.extra.get("store_id") or "",
                      "terminal_id": o.extra.get("terminal_id") or ""}
            if r is None:
                rows.append(t.BillRow(kind=t.KIND_PAYMENT, finished=(o.paid_at or o.created_at).astimezone(t.CST),
                                      received=o.amount, **common))
            else:
                rows.append(t.BillRow(kind=t.KIND_REFUND, finished=r.created_at.astimezone(t.CST),
                                      received=-r.amount, out_request_no=r.out_refund_no, **common))
        for o in self.state.orders.values():    # a cancel that refunded a paid trade
            at = o.extra.get("cancelled_at")
            if at and o.extra.get("cancel_refund") and at.astimezone(simkit.CHINA).date() == day:
                rows.append(t.BillRow(kind=t.KIND_REFUND, trade_no=o.channel_trade_no, out_trade_no=o.out_trade_no,
                                      subject=str(o.extra.get("subject", "")), created=o.created_at.astimezone(t.CST),
                                      finished=at.astimezone(t.CST), order_amount=o.amount,
                                      received=-o.extra["cancel_refund"]))
        return rows

    async def download_bill(self, request: web.Request) -> web.Response:
        day = self.bills.get(request.query.get("fileId", ""))
        if day is None:
            return web.Response(status=404, text="file not exist")
        data = t.bill_files(self.settings.mch_id + "0156", day, self.bill_rows(day), datetime.now(timezone.utc))
        return web.Response(body=data, content_type="application/octet-stream", headers={
            "Content-Disposition": f"attachment; filename={self.settings.mch_id}_{day.strftime('%Y%m%d')}.csv.zip"})


def create_app(settings: SimSettings) -> web.Application:
    app, state = simkit.base_app(settings)
    sim = AlipaySim(settings, state)
    app[BOOK_KEY] = sim.book
    app.router.add_get(t.GATEWAY_PATH, sim.gateway)
    app.router.add_post(t.GATEWAY_PATH, sim.gateway)
    app.router.add_get("/downloadBillFile.resource", sim.download_bill)
    app.router.add_get("/oauth2/publicAppAuthorize.htm", sim.oauth_authorize)
    state.notify_builder = sim.notice
    state.refund_notify_builder = sim.notice
    return app
