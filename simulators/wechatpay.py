"""WeChat Pay API v3 simulator: :class:`channels.wxv3.simulator.V3Simulator` with WeChat's
paths and headers, plus what only WeChat has – codepay (付款码支付) and reverse (撤销).

Codepay by scenario: success → 200 transaction (trade_state SUCCESS);
user paying → ``202 {"code":"USERPAYING"}`` (or, with
``extra.codepay_userpaying="trade_state"``, a 200 transaction with
trade_state USERPAYING: public clients disagree which WeChat sends, the
adapter takes both); declined → ``403 {"code":"NOTENOUGH"}``; system error →
``500 {"code":"SYSTEMERROR"}`` although the order went its way (a query
tells); slow → the answer after ``slow_seconds``. Codepay sends no payment
notification (the request has no notify_url); refunds of it are notified.
Auth codes must look like WeChat's (``^1[0-5]\\d{16}$``), else
``400 {"code":"AUTH_CODE_INVALID"}``.

It also plays the official account's web authorisation (what
open.weixin.qq.com and api.weixin.qq.com answer): ``GET
/connect/oauth2/authorize`` (snsapi_base, silent: straight back to
``redirect_uri?code=…&state=…``) and ``GET /sns/oauth2/access_token`` (the
code and the AppSecret → ``openid``; a wrong secret 40125, a spent or unknown
code 40029, as WeChat answers).
"""
from __future__ import annotations

import re
import secrets
from functools import partial
from typing import Any

from aiohttp import web

from simulators import kit as simkit
from simulators.kit import OrderState, Scenario, SimOrder, SimSettings
from channels.wechatpay.transformers import PROFILE
from simulators.wxv3 import V3Simulator, error

_AUTH_CODE = re.compile(r"^1[0-5]\d{16}$")


class WechatPaySimulator(V3Simulator):
    def __init__(self, settings: SimSettings) -> None:
        super().__init__(
            settings, PROFILE, code_url_prefix="weixin://wxpay/bizpayurl?pr=",
            h5_url_prefix="https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=",
            prepay_prefix="wx", trade_no_prefix="4200", refund_no_prefix="5030", download_path="/v3/billdownload/file")
        self.userpaying_as_state = settings.extra.get("codepay_userpaying") == "trade_state"
        for prefix, partner in self.prefixes:
            self.add("POST", f"{prefix}/out-trade-no/{{no}}/reverse", partial(self.reverse, partner=partner))
        # an openid: "o" and 27 URL-safe characters, like WeChat's
        self.oauth = simkit.OAuthServer(settings, lambda: "o" + secrets.token_urlsafe(20)[:27])
        self.app.router.add_get("/connect/oauth2/authorize", self.oauth_authorize)
        self.app.router.add_get("/sns/oauth2/access_token", self.oauth_token)

    async def oauth_authorize(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("response_type") != "code":
            return web.Response(status=400, text="response_type 参数错误", content_type="text/plain")
        return self.oauth.authorize(request, client_id="appid", scope="snsapi_base", code_param="code")

    async def oauth_token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("appid") != self.settings.app_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if not self.oauth.app_secret or q.get("secret") != self.oauth.app_secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        if q.get("grant_type") != "authorization_code":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        openid = self.oauth.redeem(q.get("code", ""))
        if openid is None:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        return web.json_response({"access_token": secrets.token_urlsafe(32), "expires_in": 7200,
                                  "refresh_token": secrets.token_urlsafe(32), "openid": openid,
                                  "scope": "snsapi_base"})

    async def create_barcode(self, order: SimOrder, data: dict[str, Any]) -> web.Response:
        auth_code = str((data.get("payer") or {}).get("auth_code") or "")
        if not _AUTH_CODE.match(auth_code):
            return self.answer(400, error("AUTH_CODE_INVALID", "付款码无效，请重新扫码"))
        store = ((data.get("scene_info") or {}).get("store_info") or {}).get("out_id")
        if not store:
            return self.answer(400, error("PARAM_ERROR", "缺少 scene_info.store_info.out_id"))
        order.auth_code = auth_code
        order.notify_url = None
        simkit.barcode_outcome(order)
        if order.scenario is not Scenario.PAY_AFTER_REVERSE:
            self.state.add(order)
        else:   # reaches WeChat's books after the reverse (no tombstone: the customer is charged)
            simkit.land_late(self.state, order)
        await self.state.barcode_notifications(order)
        await simkit.slow_if(order, self.settings)
        if simkit.answers_unknown(order):
            return self.answer(500, error("SYSTEMERROR", "系统超时，请立即调用被扫订单结果查询API"))
        return self.codepay_answer(order)

    def repeat_answer(self, order: SimOrder) -> web.Response:
        return self.codepay_answer(order) if order.auth_code else super().repeat_answer(order)

    def codepay_answer(self, order: SimOrder) -> web.Response:
        match order.state:
            case OrderState.USERPAYING if not self.userpaying_as_state:
                return self.answer(202, error("USERPAYING", "需要用户输入支付密码"))
            case OrderState.PAYERROR:
                return self.answer(403, error("NOTENOUGH", "用户余额不足，请用户换卡支付"))
            case OrderState.REVOKED | OrderState.CLOSED:
                return self.answer(400, error("ORDER_CLOSED", "订单已撤销或关闭"))
            case _:
                return self.answer(200, self.transaction_json(order))

    async def reverse(self, request: web.Request, data: dict[str, Any], *, partner: bool) -> web.Response:
        order = self.order_in_path(request, data, partner, with_app=True)
        if isinstance(order, web.Response):
            return order
        order.reverse_calls += 1
        if order.refunds:
            return self.answer(400, error("INVALID_REQUEST", "订单已发生退款，不能撤销"))
        # unpaid, paying, paid (the money goes back) or already reversed: all end REVOKED
        order.state = OrderState.REVOKED
        return self.answer(200, {**self.merchant_json(order), "out_trade_no": order.out_trade_no,
                                 "transaction_id": order.channel_trade_no})


def create_app(settings: SimSettings) -> web.Application:
    return WechatPaySimulator(settings).app
