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

Profit sharing (receivers/add, orders, query, unfreeze, return-orders) and
商家转账 (transfer-bills) play :mod:`simulators.sharekit`'s book and scenarios;
real names arrive RSA-OAEP-encrypted under the simulator's key, and one that
does not decrypt is refused PARAM_ERROR. A refund of a shared order is
refused NOT_ENOUGH while the merchant's part cannot cover it (分账回退 first).
A transfer that reaches its final state is notified (MCHTRANSFER.BILL.FINISHED,
signed and encrypted like every v3 notification) to the request's notify_url;
one to an openid containing ``hold`` waits for the payee (WAIT_USER_CONFIRM)
until ``POST /_sim/transfers/{out_bill_no}/confirm``; ``POST
/_sim/transfers/{out_bill_no}/notify`` sends its notification once more and
answers ``{"status": <paycore's HTTP status>}``.

It also plays the official account's web authorisation (what
open.weixin.qq.com and api.weixin.qq.com answer): ``GET
/connect/oauth2/authorize`` (snsapi_base, silent: straight back to
``redirect_uri?code=…&state=…``) and ``GET /sns/oauth2/access_token`` (the
code and the AppSecret → ``openid``; a wrong secret 40125, a spent or unknown
code 40029, as WeChat answers).
"""
from __future__ import annotations

import asyncio
import re
import secrets
from datetime import datetime, timezone
from functools import partial
from typing import Any

from aiohttp import web

from simulators import kit as simkit
from simulators.kit import OrderState, Scenario, SimOrder, SimSettings
from simulators.sharekit import BOOK_KEY, ShareBook, SimReturn, SimShare, SimTransfer
from channels.wechatpay import sharing as S
from channels.wechatpay.transformers import PROFILE
from channels.wxv3 import crypto
from channels.wxv3.transformers import rfc3339
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
        self.book = self.app[BOOK_KEY] = ShareBook(int(settings.extra.get("max_share_percent", 30)))
        self.transfer_delay = float(settings.extra.get("transfer_delay", 0.05))
        self.book.transfer_notice = self.transfer_notification
        self.add("POST", S.RECEIVERS_ADD, self.add_receiver)
        self.add("POST", S.ORDERS, self.share)
        self.add("POST", S.UNFREEZE, self.unfreeze)
        self.add("GET", S.ORDERS + "/{no}", self.query_share)
        self.add("POST", S.RETURNS, self.return_share)
        self.add("GET", S.RETURNS + "/{no}", self.query_return)
        self.add("POST", S.TRANSFER_BILLS, self.transfer)
        self.add("GET", S.TRANSFER_BILLS + "/out-bill-no/{no}", self.query_transfer)
        self.app.router.add_get("/_sim/transfers/{no}", self.sim_transfer)
        self.app.router.add_post("/_sim/transfers/{no}/confirm", self.sim_confirm_transfer)
        self.app.router.add_post("/_sim/transfers/{no}/notify", self.sim_notify_transfer)
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
        self.state.add(order)
        await self.state.barcode_notifications(order)
        await simkit.slow_if(order, self.settings)
        if order.scenario in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
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

    # -- profit sharing ------------------------------------------------------------------
    def decrypt_name(self, request: web.Request, value: Any) -> str | None | web.Response:
        if value is None:
            return None
        if request.headers.get("Wechatpay-Serial") != self.settings.provider_serial_no:
            return self.answer(400, error("PARAM_ERROR", "Wechatpay-Serial 与加密使用的平台证书不一致"))
        try:
            return crypto.oaep_decrypt(self.key, str(value))
        except ValueError:
            return self.answer(400, error("PARAM_ERROR", "敏感信息解密失败"))

    async def add_receiver(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        rtype, account = data.get("type"), data.get("account")
        if rtype not in ("MERCHANT_ID", "PERSONAL_OPENID", "PERSONAL_SUB_OPENID") or not account:
            return self.answer(400, error("PARAM_ERROR", "接收方类型或账号错误"))
        name = self.decrypt_name(request, data.get("name"))
        if isinstance(name, web.Response):
            return name
        if rtype == "MERCHANT_ID" and not name:
            return self.answer(400, error("PARAM_ERROR", "商户类型的接收方必须填写全称"))
        if "invalid" in str(account):
            return self.answer(400, error("INVALID_REQUEST", "分账接收方账号不存在"))
        self.book.receivers.add((rtype, str(account)))
        return self.answer(200, {"type": rtype, "account": account, "relation_type": data.get("relation_type")})

    def share_json(self, sh: SimShare) -> dict[str, Any]:
        return {"transaction_id": sh.order.channel_trade_no, "out_order_no": sh.out_order_no,
                "order_id": sh.order_id, "state": sh.state,
                "receivers": [{k: line[k] for k in ("type", "account", "amount", "description", "result")}
                              | ({"fail_reason": line["fail_reason"]} if line.get("fail_reason") else {})
                              for line in sh.lines]}

    def shared_order(self, data: dict[str, Any]) -> SimOrder | web.Response:
        order = self.state.get(None, data.get("transaction_id"))
        if order is None:
            return self.answer(404, error("RESOURCE_NOT_EXISTS", "订单不存在"))
        if order.state not in (OrderState.SUCCESS, OrderState.REFUND) or not order.extra.get("profit_sharing"):
            return self.answer(400, error("INVALID_REQUEST", "订单不需要分账或未支付"))
        if self.book.finished(order):
            return self.answer(400, error("INVALID_REQUEST", "分账已完结"))
        return order

    async def share(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        no = str(data.get("out_order_no") or "")
        if no in self.book.shares:
            return self.answer(200, self.share_json(self.book.shares[no]))
        order = self.shared_order(data)
        if isinstance(order, web.Response):
            return order
        raw = data.get("receivers")
        if not isinstance(raw, list) or not raw:
            return self.answer(400, error("PARAM_ERROR", "分账接收方列表格式错误"))
        lines = []
        for r in raw:
            amount = r.get("amount") if isinstance(r, dict) else None
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                return self.answer(400, error("PARAM_ERROR", "分账金额错误"))
            bound = (r.get("type"), str(r.get("account"))) in self.book.receivers
            lines.append({"type": r.get("type"), "account": str(r.get("account")), "amount": amount,
                          "description": str(r.get("description") or ""), "result": "PENDING" if bound else "CLOSED",
                          "fail_reason": None if bound else "NO_RELATION"})
        if sum(line["amount"] for line in lines) > self.book.shareable(order):
            return self.answer(403, error("NOT_ENOUGH", "分账金额不足"))
        sh = SimShare(out_order_no=no, order=order, order_id="3008" + self.state.new_trade_no(), lines=lines,
                      finishes=bool(data.get("unfreeze_unsplit")))
        self.book.shares[no] = sh
        self.state.spawn(self.finish_share(sh))
        if self.book.system_error_line(lines):
            return self.answer(500, error("SYSTEM_ERROR", "系统超时"))
        return self.answer(200, self.share_json(sh))

    async def finish_share(self, sh: SimShare) -> None:
        await asyncio.sleep(self.refund_delay)
        for line in sh.lines:
            if line["result"] == "PENDING":
                line["result"] = "SUCCESS"
        sh.state = "FINISHED"

    async def unfreeze(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        no = str(data.get("out_order_no") or "")
        if no in self.book.shares:
            return self.answer(200, self.share_json(self.book.shares[no]))
        order = self.shared_order(data)
        if isinstance(order, web.Response):
            return order
        rest = order.amount - order.refunded - self.book.shared(order)
        sh = SimShare(out_order_no=no, order=order, order_id="3008" + self.state.new_trade_no(), unfreeze=True,
                      finishes=True, state="FINISHED",
                      lines=[{"type": "MERCHANT_ID", "account": self.settings.mch_id, "amount": rest,
                              "description": "解冻给分账方", "result": "SUCCESS", "fail_reason": None}])
        self.book.shares[no] = sh
        return self.answer(200, self.share_json(sh))

    async def query_share(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        sh = self.book.shares.get(request.match_info["no"])
        if sh is None or sh.order.channel_trade_no != request.query.get("transaction_id"):
            return self.answer(404, error("RESOURCE_NOT_EXISTS", "记录不存在"))
        return self.answer(200, self.share_json(sh))

    def return_json(self, r: SimReturn) -> dict[str, Any]:
        out = {"order_id": r.share.order_id, "out_order_no": r.share.out_order_no, "out_return_no": r.out_return_no,
               "return_id": r.return_id, "return_mchid": r.account, "amount": r.amount, "result": r.result}
        return out | ({"fail_reason": r.fail_reason} if r.fail_reason else {})

    async def return_share(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        no = str(data.get("out_return_no") or "")
        if no in self.book.returns:
            return self.answer(200, self.return_json(self.book.returns[no]))
        sh = self.book.shares.get(str(data.get("out_order_no") or ""))
        amount = data.get("amount")
        if sh is None:
            return self.answer(404, error("RESOURCE_NOT_EXISTS", "分账单不存在"))
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return self.answer(400, error("PARAM_ERROR", "回退金额错误"))
        got = sum(line["amount"] for line in sh.lines if line["account"] == data.get("return_mchid")
                  and line["type"] == "MERCHANT_ID" and line["result"] == "SUCCESS")
        back = sum(r.amount for r in self.book.returns.values() if r.share is sh and r.account == data.get("return_mchid")
                   and r.result == "SUCCESS")
        r = SimReturn(out_return_no=no, share=sh, account=str(data.get("return_mchid")), amount=amount,
                      return_id="3008" + self.state.new_trade_no())
        if amount > got - back:
            r.result, r.fail_reason = "FAILED", "BALANCE_NOT_ENOUGH"
        self.book.returns[no] = r
        return self.answer(200, self.return_json(r))

    async def query_return(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        r = self.book.returns.get(request.match_info["no"])
        if r is None or r.share.out_order_no != request.query.get("out_order_no"):
            return self.answer(404, error("RESOURCE_NOT_EXISTS", "记录不存在"))
        return self.answer(200, self.return_json(r))

    async def refund(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        order = self.state.get(data.get("out_trade_no"), data.get("transaction_id"))
        refund_amount = (data.get("amount") or {}).get("refund")
        if (order is not None and order.extra.get("profit_sharing") and isinstance(refund_amount, int)
                and data.get("out_refund_no") not in order.refunds
                and refund_amount > order.amount - order.refunded - self.book.shared(order)):
            return self.answer(403, error("NOT_ENOUGH", "订单可退金额不足，请先分账回退"))
        return await super().refund(request, data)

    # -- 商家转账 ----------------------------------------------------------------------
    def transfer_json(self, t: SimTransfer) -> dict[str, Any]:
        out = {"mch_id": self.settings.mch_id, "out_bill_no": t.out_no, "transfer_bill_no": t.bill_no,
               "appid": self.settings.app_id, "state": t.state, "transfer_amount": t.amount, "openid": t.account}
        return out | ({"fail_reason": t.fail_reason} if t.fail_reason else {})

    async def transfer(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        self.book.transfer_calls += 1
        no, amount, openid = str(data.get("out_bill_no") or ""), data.get("transfer_amount"), data.get("openid")
        if data.get("appid") != self.settings.app_id:
            return self.answer(400, error("PARAM_ERROR", "appid 与商户号不匹配"))
        if not no.isalnum() or not openid or isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return self.answer(400, error("PARAM_ERROR", "参数错误"))
        if no in self.book.transfers:
            return self.answer(200, self.transfer_json(self.book.transfers[no]))
        name = self.decrypt_name(request, data.get("user_name"))
        if isinstance(name, web.Response):
            return name
        sc = Scenario.for_amount(amount)
        if sc is Scenario.DECLINED:
            return self.answer(403, error("NOT_ENOUGH", "商户运营账户资金不足"))
        t = SimTransfer(out_no=no, amount=amount, account=str(openid), bill_no="1330" + self.state.new_trade_no(),
                        name=name, notify_url=data.get("notify_url") or None)
        self.book.transfer_outcome(t)
        self.book.transfers[no] = t
        self.state.spawn(self.complete_transfer(t))
        await simkit.slow_if(sc, self.settings)
        if sc in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return self.answer(500, error("SYSTEM_ERROR", "系统繁忙，请稍后重试"))
        return self.answer(200, {k: v for k, v in self.transfer_json(t).items()
                                 if k in ("out_bill_no", "transfer_bill_no", "state")})

    async def complete_transfer(self, t: SimTransfer) -> None:
        await asyncio.sleep(self.transfer_delay)
        if "hold" in t.account:
            t.state = "WAIT_USER_CONFIRM"     # the payee has to accept it in WeChat first
            return
        self.finish_transfer(t)

    def finish_transfer(self, t: SimTransfer) -> None:
        self.book.complete(t)
        t.extra["finished_at"] = datetime.now(timezone.utc)
        if t.notify_url and self.book.notify_transfers:
            self.state.spawn(self.state.deliver(lambda: self.transfer_notification(t), t.out_no))

    def transfer_notification(self, t: SimTransfer) -> tuple[str, dict[str, str], bytes]:
        plain = {"mch_id": self.settings.mch_id, "out_bill_no": t.out_no, "transfer_bill_no": t.bill_no,
                 "transfer_amount": t.amount, "state": t.state, "openid": t.account,
                 "create_time": rfc3339(t.created_at), "update_time": rfc3339(t.extra.get("finished_at", t.created_at))}
        if t.fail_reason:
            plain["fail_reason"] = t.fail_reason
        headers, body = self.envelope(f"EV-{t.bill_no}-{t.state}", S.TRANSFER_EVENT, "商家转账单据终态通知",
                                      "mch_payment", plain)
        return str(t.notify_url), headers, body

    async def query_transfer(self, request: web.Request, data: dict[str, Any]) -> web.Response:
        t = self.book.transfers.get(request.match_info["no"])
        if t is None:
            return self.answer(404, error("NOT_FOUND", "记录不存在"))
        t.queries += 1
        return self.answer(200, self.transfer_json(t))

    async def sim_confirm_transfer(self, request: web.Request) -> web.Response:
        """The payee accepts a held transfer: it completes and WeChat notifies the merchant."""
        t = self.book.transfers.get(request.match_info["no"])
        if t is None or t.state != "WAIT_USER_CONFIRM":
            return web.json_response({"error": "no transfer waiting for the payee"}, status=404)
        self.finish_transfer(t)
        return web.json_response(self.transfer_json(t))

    async def sim_notify_transfer(self, request: web.Request) -> web.Response:
        """Deliver a final transfer's notification once more (WeChat repeats unacknowledged ones)."""
        t = self.book.transfers.get(request.match_info["no"])
        if t is None or not t.notify_url or t.state not in ("SUCCESS", "FAIL"):
            return web.json_response({"error": "no final transfer with a notify_url"}, status=404)
        return web.json_response({"status": await self.state.deliver(lambda: self.transfer_notification(t),
                                                                      t.out_no)})

    async def sim_transfer(self, request: web.Request) -> web.Response:
        """The test operator's view: a transfer and how often transfers were asked for (never the name)."""
        t = self.book.transfers.get(request.match_info["no"])
        if t is None:
            return web.json_response({"error": "no such transfer"}, status=404)
        return web.json_response(dict(self.transfer_json(t), calls=self.book.transfer_calls,
                                      name_given=t.name is not None))


def create_app(settings: SimSettings) -> web.Application:
    return WechatPaySimulator(settings).app
