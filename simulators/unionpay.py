"""UnionPay ACP 5.1.0 simulator: plays gateway.95516.com and filedownload.95516.com.

It verifies paycore's signMethod-01 signatures against paycore's public key
and ``certId`` (a bad one is answered respCode 11 验证签名失败, signed, as
UnionPay answers), signs every answer and notification with its own key,
decrypts the contactless ``accNo``/``customerInfo`` with its private key and
keeps nothing of the token, and plays the scenarios of
:class:`simulators.kit.Scenario`.

Answer codes it uses: 00 ok; 05 accepted, customer still confirming (user
paying); 03 communication timeout, query (system error); 64 insufficient
balance (declined); 60 failed at the issuer (system error then failed); 12
duplicate orderId; 34 no such transaction; 35 original missing or in the
wrong state; 33 amount beyond what is left to refund; 01 refund refused
(REFUND_DECLINED); 32 no permission (a method this channel does not take);
10/11/13 format / signature / missing field; 98 no file for that day.
Scenarios 22–25: a refund answered 03 although done and 34 to its query for
``refund_delay`` seconds; a consume answered 03 that reaches the books
``late_pay_delay`` seconds later (after the cancel found nothing); queries
answering 34 for ``query_lag`` seconds; txnAmt one fen short in queries and
notifications. A query of a cancelled consume answers origRespCode 01 (failed) — a
simplification: ACP reports the consume itself, and paycore learns the
cancellation from the 撤销 answer.

云闪付's open platform: ``POST /open/access/1.0/frontToken`` issues the frontToken
(the request signed with the app secret, as UnionPay checks it; a bad one is
answered resp BC0025 验签失败), valid for ``expiresIn`` 7200 s; the app's side of
``upsdk.config`` is the bridge check: every ``/_sim/app/bridge`` call must carry
``upsdk_config`` and ``url`` (the page's address), and a configuration that is not
signed over a live frontToken, this appId and that url is refused, as 云闪付
refuses ``upsdk.pay`` on a page whose config failed. ``GET /_sim/upsdk`` says how
many tokens were issued.

The order book is keyed by paycore's id (orderId mapped back), so the
``/_sim`` routes take the same ids on every channel; ``txnTime`` is
format-checked but an order is found by orderId alone (paycore's ids are
unique).
"""
from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, ClassVar

import orjson

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from simulators import kit as simkit
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings
from channels.unionpay import transformers as t
from channels.unionpay.adapter import load_private_key, load_public_key

Handler = Callable[[t.Fields], Awaitable[t.Fields]]

ECHOED = ("version", "encoding", "signMethod", "txnType", "txnSubType", "bizType", "accessType", "merId",
          "orderId", "txnTime", "txnAmt", "currencyCode", "reqReserved", "origQryId", "settleDate", "fileType")

REQUIRED = ("version", "encoding", "signMethod", "certId", "txnType", "txnSubType", "bizType", "accessType",
            "merId", "txnTime")


OPEN_PREFIX = "/open/access/1.0"
FRONT_TOKEN_TTL = 7200.0

#: the token ranges this network issues (UnionPay cards and DPANs start 62 or 81)
UNIONPAY_TOKEN_BINS = ("62", "81")


class Refused(Exception):
    """Answer the request with this respCode (nothing happens)."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


class UnionPaySimulator:
    """The UnionPay side. A wallet simulator is a subclass declared with
    ``wallet=`` and ``se_type=``: it takes only nfc and app consumes and
    requires that seType on in-app ones."""

    name: ClassVar[str] = "unionpay"
    methods: ClassVar[frozenset[str]] = frozenset({"barcode", "qr", "nfc", "app"})
    wallet: ClassVar[str | None] = None
    #: the seType an in-app (tn) request must carry in ``reserved`` (None: no seType)
    se_type: ClassVar[str | None] = None

    def __init_subclass__(cls, *, wallet: str | None = None, se_type: str | None = None, **kw: object) -> None:
        super().__init_subclass__(**kw)
        if wallet:
            cls.name, cls.wallet, cls.se_type = wallet, wallet, se_type
            cls.methods = frozenset({"nfc", "app"})

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.app, self.state = simkit.base_app(settings)
        self._key: RSAPrivateKey = load_private_key(settings.provider_private_key_file)
        self._paycore_key: RSAPublicKey = load_public_key(settings.paycore_public_key_file)
        self._refunds: dict[str, str] = {}      # refund key (rfd_…) → payment key
        self._trace = 0
        self._seq = 0
        self.state.notify_builder = self._payment_notification
        self.state.refund_notify_builder = self._refund_notification
        self.app.router.add_post(t.BACK_TRANS_PATH, self._endpoint({
            (t.TXN_CONSUME, t.SUB_B2C): self._barcode, (t.TXN_CONSUME, t.SUB_C2B): self._qr,
            (t.TXN_CONSUME, t.SUB_CONSUME): self._nfc, (t.TXN_REFUND, None): self._refund,
            (t.TXN_CANCEL, None): self._cancel}))
        self.app.router.add_post(t.APP_TRANS_PATH, self._endpoint({(t.TXN_CONSUME, t.SUB_CONSUME): self._app}))
        self.app.router.add_post(t.QUERY_PATH, self._endpoint({(t.TXN_QUERY, None): self._query}))
        self.app.router.add_post(t.FILE_TRANS_PATH, self._endpoint({(t.TXN_FILE, None): self._file}))
        self._front_tokens: dict[str, float] = {}   # issued frontToken → when it expires (monotonic)
        self.front_tokens_issued = 0
        if self.wallet is None:                      # 云闪付 itself; the phone makers' wallets have no web SDK
            self.app.router.add_post(OPEN_PREFIX + t.FRONT_TOKEN_PATH, self._front_token)
            self.app.router.add_get("/_sim/upsdk", self._upsdk_stats)
            self.state.bridge_check = self._check_upsdk_config

    # -- 云闪付 open platform and the app's check of upsdk.config -------------------------
    async def _front_token(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"resp": "N62100", "msg": "报文格式错误", "params": {}})
        problem = t.check_front_token_request(body, self.settings.app_id,
                                              str(self.settings.extra.get("app_secret", "")))
        if problem is not None:
            code = {"signature": "BC0025", "unknown appId": "BC2126"}.get(problem, "N62104")
            return web.json_response({"resp": code, "msg": problem, "params": {}})
        token = secrets.token_urlsafe(18)
        now = time.monotonic()
        self._front_tokens = {k: v for k, v in self._front_tokens.items() if v > now}
        self._front_tokens[token] = now + FRONT_TOKEN_TTL
        self.front_tokens_issued += 1
        return web.json_response({"resp": t.OPEN_RESP_OK, "msg": "success",
                                  "params": {"frontToken": token, "expiresIn": int(FRONT_TOKEN_TTL)}})

    async def _upsdk_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"front_tokens_issued": self.front_tokens_issued})

    def _check_upsdk_config(self, data: dict[str, Any]) -> str | None:
        config, url = data.get("upsdk_config"), data.get("url")
        if not isinstance(config, dict) or not isinstance(url, str):
            return "upsdk.config was not called"
        now = time.monotonic()
        if not any(expiry > now and t.upsdk_config_valid(config, self.settings.app_id, token, url)
                   for token, expiry in self._front_tokens.items()):
            return "upsdk.config: signature does not verify"
        return None

    @classmethod
    def create_app(cls, settings: SimSettings) -> web.Application:
        return cls(settings).app

    # -- wire ------------------------------------------------------------------
    def _signed(self, fields: t.Fields) -> t.Fields:
        base = {"version": t.VERSION, "encoding": t.ENCODING, "signMethod": t.SIGN_METHOD,
                "certId": self.settings.provider_serial_no}
        return t.signed({**base, **fields}, self._key)

    def _endpoint(self, routes: dict[tuple[str, str | None], Handler]):
        async def handle(request: web.Request) -> web.Response:
            fields: t.Fields = {}
            try:
                try:
                    fields = t.parse_form(await request.read())
                except (ValueError, UnicodeDecodeError):
                    raise Refused("10", "报文格式错误") from None
                self._check_envelope(fields)
                key = (fields["txnType"], fields["txnSubType"])
                handler = routes.get(key) or routes.get((key[0], None))
                if handler is None:
                    raise Refused("32", "无此交易权限")
                answer = await handler(fields)
            except Refused as e:
                answer = {"respCode": e.code, "respMsg": e.msg}
            echoed = {k: fields[k] for k in ECHOED if k in fields}
            text = t.encode_answer(self._signed({**echoed, **answer}))
            return web.Response(text=text, content_type="text/plain", charset="utf-8")
        return handle

    def _check_envelope(self, f: t.Fields) -> None:
        if not f.get("signature"):
            raise Refused("11", "验证签名失败")
        if f.get("certId") != self.settings.serial_no or not t.verify(f, self._paycore_key):
            raise Refused("11", "验证签名失败")
        missing = [k for k in REQUIRED if not f.get(k)]
        if missing:
            raise Refused("13", f"报文交易要素缺失[{missing[0]}]")
        if (f["version"], f["signMethod"], f["encoding"].upper()) != (t.VERSION, t.SIGN_METHOD, "UTF-8"):
            raise Refused("10", "报文格式错误[version/signMethod/encoding]")
        if f["merId"] != self.settings.mch_id:
            raise Refused("31", "商户状态不正确")
        try:
            t.parse_txn_time(f["txnTime"])
        except ValueError:
            raise Refused("10", "报文格式错误[txnTime]") from None

    @staticmethod
    def _need(f: t.Fields, *names: str) -> None:
        for n in names:
            if not f.get(n):
                raise Refused("13", f"报文交易要素缺失[{n}]")

    def _amount(self, f: t.Fields) -> int:
        self._need(f, "txnAmt")
        if f.get("currencyCode", t.CURRENCY_CNY) != t.CURRENCY_CNY:
            raise Refused("10", "报文格式错误[currencyCode]")
        try:
            amount = t.txn_amt_to_fen(f["txnAmt"])
        except ValueError:
            raise Refused("10", "报文格式错误[txnAmt]") from None
        if amount <= 0:
            raise Refused("10", "报文格式错误[txnAmt]")
        return amount

    def _trace_fields(self, order: SimOrder) -> t.Fields:
        """queryId and the trace/settle fields UnionPay adds once a consume is paid."""
        out = {"queryId": order.channel_trade_no}
        if order.paid_at:
            local = order.paid_at.astimezone(t.BEIJING)
            out.update(traceNo=order.extra.setdefault("traceNo", f"{self._next_trace():06d}"),
                       traceTime=local.strftime("%m%d%H%M%S"), settleAmt=str(order.amount),
                       settleCurrencyCode=t.CURRENCY_CNY, settleDate=order.paid_at.strftime("%m%d"))
        return out

    def _query_id(self) -> str:
        """ACP queryId: 21 digits, unique (time + a counter)."""
        self._seq += 1
        return f"{datetime.now(timezone.utc):%Y%m%d%H%M%S}{self._seq % 10**7:07d}"

    def _next_trace(self) -> int:
        self._trace = self._trace % 999999 + 1
        return self._trace

    # -- consumes ------------------------------------------------------------------
    def _new_order(self, f: t.Fields, method: str) -> SimOrder:
        if method not in self.methods:
            raise Refused("32", "无此交易权限")
        self._need(f, "orderId", "backUrl")
        if not re.fullmatch(r"[0-9A-Za-z]{8,40}", f["orderId"]):
            raise Refused("10", "报文格式错误[orderId]")
        amount = self._amount(f)
        key = t.from_order_id(f["orderId"])
        if self.state.get(key) is not None:
            raise Refused(t.RESP_DUPLICATE, "重复交易")
        return SimOrder(out_trade_no=key, amount=amount, method=method, notify_url=f["backUrl"],
                        channel_trade_no=self._query_id(), scenario=Scenario.for_amount(amount),
                        mch_id=f["merId"],
                        extra={"orderId": f["orderId"], "txnTime": f["txnTime"], "txnSubType": f["txnSubType"],
                               "bizType": f["bizType"], "reqReserved": f.get("reqReserved", "")})

    async def _synchronous(self, order: SimOrder) -> t.Fields:
        """Barcode and contactless: the outcome is in the answer."""
        simkit.barcode_outcome(order)
        if order.scenario is Scenario.DECLINED:
            order.extra["resp"] = ("64", "卡上的余额不足")
        elif order.scenario is Scenario.SYSTEM_ERROR_THEN_FAILED:
            order.extra["resp"] = ("60", "交易失败，详情请咨询您的发卡行")
        if order.scenario is Scenario.PAY_AFTER_REVERSE:
            simkit.land_late(self.state, order)    # reaches the books after the cancel found nothing
        else:
            self.state.add(order)
        order.pay_calls += 1
        await self.state.barcode_notifications(order)
        await simkit.slow_if(order, self.settings)
        if simkit.answers_unknown(order):
            return {"respCode": "03", "respMsg": "交易通讯超时，请发起查询交易"}
        code, msg = self._orig_code(order)
        return {"respCode": code, "respMsg": msg, **self._trace_fields(order)}

    async def _barcode(self, f: t.Fields) -> t.Fields:
        self._need(f, "qrNo")
        if not re.fullmatch(r"\d{1,20}", f["qrNo"]):
            raise Refused("10", "报文格式错误[qrNo]")
        order = self._new_order(f, "barcode")
        order.auth_code = f["qrNo"]
        return await self._synchronous(order)

    async def _nfc(self, f: t.Fields) -> t.Fields:
        self._need(f, "accNo", "encryptCertId", "customerInfo", "ICTransData")
        if f["encryptCertId"] != self.settings.provider_serial_no:
            raise Refused("10", "报文格式错误[encryptCertId]")
        try:
            token = t.decrypt_sensitive(f["accNo"], self._key)
            info = t.parse_customer_info(f["customerInfo"], self._key)
            chip = dict(t.tlv_parse(f["ICTransData"]))
        except ValueError:
            raise Refused("10", "报文格式错误[accNo/customerInfo/ICTransData]") from None
        if not re.fullmatch(r"\d{13,19}", token):
            raise Refused("61", "输入的卡号无效")
        if not token.startswith(UNIONPAY_TOKEN_BINS):   # a token of another network: not UnionPay's to parse
            raise Refused("10", "报文格式错误[accNo]")
        if not re.fullmatch(r"\d{4}", info.get("expired", "")) or not chip.get(t.CRYPTOGRAM_TAG):
            raise Refused("13", "报文交易要素缺失[expired/9F26]")
        order = self._new_order(f, "nfc")
        return await self._synchronous(order)

    async def _qr(self, f: t.Fields) -> t.Fields:
        order = self._new_order(f, "qr")
        order.qr_code = f"https://qr.95516.com/00010000/{secrets.token_hex(10)}"
        return await self._order_based(order, {"qrCode": order.qr_code})

    async def _app(self, f: t.Fields) -> t.Fields:
        order = self._new_order(f, "app")
        try:
            se_type = t.parse_composite(f["reserved"]).get("seType") if f.get("reserved") else None
        except ValueError:
            raise Refused("10", "报文格式错误[reserved]") from None
        if se_type != self.se_type:
            raise Refused("13", "报文交易要素缺失[seType]")
        order.prepay_id = f"{datetime.now(timezone.utc):%Y%m%d%H%M%S}{secrets.randbelow(10**7):07d}"
        return await self._order_based(order, {"tn": order.prepay_id})

    async def _order_based(self, order: SimOrder, answer: t.Fields) -> t.Fields:
        """QR and in-app: the order waits for the customer (/_sim/customer/pay)."""
        self.state.add(order)
        order.pay_calls += 1
        await simkit.slow_if(order, self.settings)
        if order.scenario in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return {"respCode": "03", "respMsg": "交易通讯超时，请发起查询交易"}
        return {"respCode": t.RESP_OK, "respMsg": "成功[0000000]", **answer}

    @staticmethod
    def _orig_code(order: SimOrder) -> tuple[str, str]:
        match order.state:
            case OrderState.SUCCESS | OrderState.REFUND:
                return t.RESP_OK, "成功[0000000]"
            case OrderState.NOTPAY | OrderState.USERPAYING:
                return t.RESP_ACCEPTED, "交易已受理，请稍后查询交易结果"
            case OrderState.PAYERROR:
                return order.extra.get("resp", ("64", "卡上的余额不足"))
            case OrderState.REVOKED | OrderState.CLOSED:
                return "01", "交易失败[交易已撤销]"
        return "01", "交易失败"

    # -- query ----------------------------------------------------------------------
    async def _query(self, f: t.Fields) -> t.Fields:
        self._need(f, "orderId")
        key = t.from_order_id(f["orderId"])
        if key in self._refunds:
            order = self.state.orders[self._refunds[key]]
            refund = order.refunds[key]
            if not simkit.refund_visible(refund):
                raise Refused(t.RESP_NO_SUCH_TXN, "查无此交易")
            ok = refund.status == "SUCCESS"
            return {"respCode": t.RESP_OK, "respMsg": "成功[0000000]", "queryId": refund.channel_refund_no,
                    "origRespCode": t.RESP_OK if ok else "01", "origRespMsg": "成功[0000000]" if ok else "交易失败",
                    "txnAmt": str(refund.amount), "origQryId": order.channel_trade_no,
                    "reqReserved": refund.extra["reqReserved"]}
        order = self.state.get(key)
        if order is None or self.state.lagging(order):
            raise Refused(t.RESP_NO_SUCH_TXN, "查无此交易")
        self.state.on_query(order)
        code, msg = self._orig_code(order)
        return {"respCode": t.RESP_OK, "respMsg": "成功[0000000]", "origRespCode": code, "origRespMsg": msg,
                "txnAmt": str(simkit.stated_amount(order)), "reqReserved": order.extra["reqReserved"], **self._trace_fields(order)}

    # -- refund and cancel ----------------------------------------------------------
    def _original(self, f: t.Fields) -> SimOrder:
        self._need(f, "origQryId")
        order = self.state.get(channel_trade_no=f["origQryId"])
        if order is None:
            raise Refused("35", "原交易不存在或状态不正确")
        return order

    async def _refund(self, f: t.Fields) -> t.Fields:
        self._need(f, "orderId", "backUrl")
        amount = self._amount(f)
        order = self._original(f)
        key = t.from_order_id(f["orderId"])
        if key in self._refunds:
            raise Refused(t.RESP_DUPLICATE, "重复交易")
        if order.state not in (OrderState.SUCCESS, OrderState.REFUND):
            raise Refused("35", "原交易不存在或状态不正确")
        if order.scenario is Scenario.REFUND_DECLINED:
            raise Refused("01", "交易失败[退货被拒绝]")
        if amount > order.amount - order.refunded:
            raise Refused("33", "交易金额超限")
        refund = SimRefund(out_refund_no=key, amount=amount, channel_refund_no=self._query_id(),
                           extra={"orderId": f["orderId"], "txnTime": f["txnTime"], "backUrl": f["backUrl"],
                                  "reqReserved": f.get("reqReserved", "")})
        order.refunds[key] = refund
        order.state = OrderState.REFUND
        self._refunds[key] = order.out_trade_no
        if simkit.delay_refund(self.state, order, refund):   # done; the answer is lost, the query lags
            return {"respCode": "03", "respMsg": "交易通讯超时，请发起查询交易"}
        self.state.notify(order, refund)
        return {"respCode": t.RESP_OK, "respMsg": "成功[0000000]", "queryId": refund.channel_refund_no}

    async def _cancel(self, f: t.Fields) -> t.Fields:
        self._need(f, "orderId")
        order = self._original(f)
        order.reverse_calls += 1
        if order.state is OrderState.PAYERROR or order.refunds:
            raise Refused("35", "原交易不存在或状态不正确")
        if order.state is OrderState.NOTPAY:
            order.state = OrderState.CLOSED
        elif order.state in (OrderState.USERPAYING, OrderState.SUCCESS):
            order.state = OrderState.REVOKED
        # already cancelled: answered 00 again (idempotent)
        return {"respCode": t.RESP_OK, "respMsg": "成功[0000000]", "queryId": self._query_id()}

    # -- daily file -----------------------------------------------------------------
    async def _file(self, f: t.Fields) -> t.Fields:
        self._need(f, "settleDate", "fileType")
        try:
            day = t.settle_date_to_day(f["settleDate"], datetime.now(t.BEIJING).date())   # Beijing's today
        except ValueError:
            raise Refused("10", "报文格式错误[settleDate]") from None
        rows: list[t.Fields] = []
        for _kind, order, refund in self.state.statement_rows(day.isoformat()):
            if refund is None:
                rows.append({"txnType": t.TXN_CONSUME, "queryId": order.channel_trade_no,
                             "orderId": order.extra["orderId"], "txnAmt": str(order.amount),
                             "txnTime": order.extra["txnTime"], "respCode": t.RESP_OK})
            else:
                rows.append({"txnType": t.TXN_REFUND, "queryId": refund.channel_refund_no,
                             "orderId": refund.extra["orderId"], "origQryId": order.channel_trade_no,
                             "origOrderId": order.extra["orderId"], "txnAmt": str(refund.amount),
                             "txnTime": refund.extra["txnTime"], "respCode": t.RESP_OK})
        if not rows:
            raise Refused(t.RESP_FILE_NOT_FOUND, "文件不存在")
        name, content = t.statement_content(self.settings.mch_id, day, rows)
        return {"respCode": t.RESP_OK, "respMsg": "成功[0000000]", "fileName": name, "fileContent": content}

    # -- notifications ----------------------------------------------------------------
    def _form(self, url: str, fields: t.Fields) -> tuple[str, dict[str, str], bytes]:
        body = t.encode_form(self._signed(fields))
        return url, {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}, body

    def _payment_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        code, msg = self._orig_code(order)
        fields = {"txnType": t.TXN_CONSUME, "txnSubType": order.extra["txnSubType"], "bizType": order.extra["bizType"],
                  "accessType": t.ACCESS_TYPE_MERCHANT, "merId": order.mch_id, "orderId": order.extra["orderId"],
                  "txnTime": order.extra["txnTime"], "txnAmt": str(simkit.stated_amount(order)),
                  "currencyCode": t.CURRENCY_CNY,
                  "respCode": code, "respMsg": msg, "reqReserved": order.extra["reqReserved"],
                  **self._trace_fields(order)}
        return self._form(order.notify_url or "", fields)

    def _refund_notification(self, order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        assert refund is not None
        fields = {"txnType": t.TXN_REFUND, "txnSubType": "00", "bizType": t.BIZ_TYPE,
                  "accessType": t.ACCESS_TYPE_MERCHANT, "merId": order.mch_id, "orderId": refund.extra["orderId"],
                  "txnTime": refund.extra["txnTime"], "txnAmt": str(refund.amount), "currencyCode": t.CURRENCY_CNY,
                  "origQryId": order.channel_trade_no, "queryId": refund.channel_refund_no,
                  "respCode": t.RESP_OK if refund.status == "SUCCESS" else "01",
                  "respMsg": "成功[0000000]", "reqReserved": refund.extra["reqReserved"]}
        return self._form(refund.extra["backUrl"], fields)


def create_app(settings: SimSettings) -> web.Application:
    return UnionPaySimulator.create_app(settings)
