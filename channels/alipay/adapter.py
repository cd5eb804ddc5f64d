"""Alipay OpenAPI v2 adapter (gateway.do, RSA2).

Follows Alipay's open platform documentation for 当面付 (alipay.trade.pay /
precreate / cancel), 小程序/JSAPI (alipay.trade.create), 手机网站支付
(alipay.trade.wap.pay), APP 支付 (alipay.trade.app.pay), the common trade APIs
(query / refund / fastpay.refund.query / close), the asynchronous
notification (trade_status_sync) and the bill download
(alipay.data.dataservice.bill.downloadurl.query); signing checked against the
public python-alipay-sdk and alipay-sdk-java (``AlipaySignature``).
"""
from __future__ import annotations

import zipfile
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Mapping
from urllib.parse import parse_qsl, urlencode

from channels import oauth
from channels.alipay import sharing as sh
from channels.alipay import transformers as t
from channels.base import (
    Ack,
    ChannelAdapter,
    ChannelError,
    ChannelResult,
    ChannelSettings,
    Flow,
    Method,
    Notification,
    NotificationRejected,
    PayRequest,
    RecoveryRule,
    RefundRequest,
    RefundResult,
    StatementLine,
    TradeRef,
    TradeStatus,
    UnsupportedFlow,
)
from channels.http import ChannelHttp
from channels.transfers import (BindResult, PayoutRequest, PayoutResult, ReceiverSpec, ShareRequest, ShareResult,
                                ShareStatus)


class AlipayAdapter(ChannelAdapter):
    """paycore ↔ Alipay. Choices where the facts left room (kept in ``settings.extra``):

    * Transport: every call is one ``POST <base_url>/gateway.do`` form (common
      parameters and biz_content together, UTF-8); Alipay accepts the common
      parameters in the body as well as in the query.
    * h5 (wap) and app make no server call, as at Alipay: the pay request is
      signed here and handed to the client. ``pay_params`` is
      ``{"pay_url": "<base_url>/gateway.do?<signed query>"}`` for h5 (the page
      the browser opens; ``extra.quit_url`` / ``extra.return_url`` optional) and
      ``{"order_string": "<signed, url-encoded order>"}`` for app (what the
      Alipay SDK's ``payV2`` takes). Alipay creates the trade when the client
      opens it, so until then a query answers ACQ.TRADE_NOT_EXIST, mapped to
      PENDING for qr/h5/app (for barcode/jsapi it is NOT_FOUND). JSAPI
      ``pay_params`` is ``{"trade_no": …}`` (``my.tradePay({tradeNO})``).
    * Orders carry ``time_expire`` = PayRequest.expire_at, so an unscanned QR
      or an unopened h5/app order cannot be paid after it expired. Before that,
      a precreated QR exists at Alipay only once scanned: trade.close answers
      ACQ.TRADE_NOT_EXIST (NOT_FOUND, *not* final) and does not stop a later
      scan. paycore therefore cancels an open order with trade.cancel, which
      leaves a tombstone (a later pay with the same out_trade_no fails).

    Which answers are final (docs/reliability.md):

    * final: trade.pay/query TRADE_SUCCESS / TRADE_FINISHED, a 40004 decline;
      trade.cancel success (action close|refund) and its ACQ.TRADE_NOT_EXIST
      (tombstone); trade.close success; a refund with ``fund_change=Y``; a
      refund query with REFUND_SUCCESS; a refund refused with a business code.
    * not final: WAIT_BUYER_PAY, 10003, 20000, ACQ.SYSTEM_ERROR, any timeout;
      trade.query ACQ.TRADE_NOT_EXIST (the pay may still arrive; QR/h5/app:
      not scanned yet); trade.close ACQ.TRADE_NOT_EXIST; ``retry_flag=Y``; a
      refund with ``fund_change=N`` (a repeat: query it); a refund query with
      no data (re-send the same out_request_no).
    * Sub-merchants (ISV mode): ``sub_mch_id`` is sent as
      ``biz_content.sub_merchant.merchant_id`` (``extra.sub_merchant_mode =
      "sub_merchant"``, the default); with ``"app_auth_token"`` it is sent as
      the ``app_auth_token`` common parameter of every call instead (the
      authorised-app variant), which trades of that merchant then need.
    * Answers: the signature is checked over the raw ``<method>_response`` text.
      Unsigned answers are accepted only for the gateway refusals 40001/40002/
      40006 (→ ChannelError not retriable, kind ``rejected``: e.g.
      isv.invalid-signature, nothing happened) and 20000 (→ retriable
      ``system_error``); 40004 ACQ.SYSTEM_ERROR is retriable ``system_error``
      too; any other unsigned answer is ``bad_signature``.
    * Declines: 40004 → FAILED with ``failure_code`` = the ``sub_code``
      (ACQ.BUYER_BALANCE_NOT_ENOUGH, ACQ.PAYMENT_AUTH_CODE_INVALID, …).
    * Cancel (reverse): ``retry_flag=Y`` → PROCESSING with ``retry=True``;
      success (``action`` close or refund) → REVERSED; ACQ.TRADE_NOT_EXIST →
      NOT_FOUND; another refusal (e.g. past 24 h) → the trade's queried status
      with the refusal as ``failure_code``. Close refused because the trade is
      paid → likewise the queried status.
    * Refunds are synchronous: ``fund_change=Y`` → SUCCEEDED; ``N`` (a repeat)
      → confirmed by fastpay.refund.query; a refund query that finds nothing →
      FAILED ``REFUND_NOT_EXIST`` (Alipay: re-send with the same out_request_no).
      ``channel_refund_no`` stays None: Alipay gives refunds no number of their own.
    * Notifications: Alipay posts payment *and* refund changes to the payment's
      notify_url as ``trade_status_sync``; the kind comes from the content
      (``out_biz_no`` + ``refund_fee`` → refund), not from the path.
      ``merchant_ref`` is the ``app_id``; ``amount`` is the trade's
      ``total_amount``; no freshness check (Alipay retries for about 25 hours).
    * Payer id (jsapi's ``buyer_id``): the web authorisation ``auth_base`` at
      ``extra.oauth_authorize_url`` (default openauth.alipay.com's
      publicAppAuthorize.htm) for ``app_id``; its ``auth_code`` is exchanged with
      ``alipay.system.oauth.token`` (grant_type authorization_code, signed like
      every call; no app secret: the app's RSA key is its credential). Final
      answers: ``user_id``, or ``error_response`` (the code is spent: not retriable).
    * Statement: the bill is a zip holding ``<account>_<yyyymmdd>_业务明细.csv``
      (GBK, ``#`` comment lines around the table) and a summary; the detail file
      is parsed. Payment rows give ``订单金额``, refund rows ``|商家实收|``; a
      refund row without ``退款批次号/请求号`` (a cancel's refund) is REVERSED.
      No bill for the day (isp.bill_not_exist) is an empty statement.
    * Profit sharing and transfers (:mod:`channels.alipay.sharing` has the wire facts and which
      answers are final): a payment created with ``profit_sharing`` is paid with
      ``extend_params.royalty_freeze``; receivers (a user id or a logon id) are bound with
      royalty.relation.bind (its out_request_no is derived from the receiver's type and
      account, so a repeat is the same request); a split is order.settle in async mode
      (``finish`` → ``royalty_finish``), its outcome read with order.settle.query. Refunds
      of a shared trade need no share taken back first here. Payouts are uni.transfer
      (TRANS_ACCOUNT_NO_PWD, DIRECT_TRANSFER) to a user id or a logon id, the payee's name
      checked by Alipay when given; Alipay sends no notification for them, so an unknown
      outcome is ended by common.query.
    """

    name: ClassVar[str] = "alipay"
    methods: ClassVar[frozenset[Method]] = frozenset(t.PAY_API)
    flows: ClassVar[frozenset[Flow]] = frozenset({
        Flow.PAY, Flow.QUERY, Flow.REFUND, Flow.REFUND_QUERY, Flow.REVERSE, Flow.CLOSE, Flow.NOTIFY,
        Flow.STATEMENT, Flow.SHARE, Flow.PAYOUT,
    })
    receiver_types: ClassVar[frozenset[str]] = frozenset(sh.RECEIVER_TYPES)
    payout_types: ClassVar[frozenset[str]] = frozenset(sh.PAYOUT_TYPES)
    #: Alipay 当面付: "poll every 3–6 s for about 60 s, then cancel (valid within 24 h)"
    #: (channels.md §2, barcode rule): first query after 3 s, then every 5 s; after
    #: 60 s the still-unknown payment is cancelled (trade.cancel), repeated on retry_flag=Y.
    default_recovery: ClassVar[RecoveryRule] = RecoveryRule(
        first_delay=3.0, interval=5.0, give_up_after=60.0, final_action="reverse", reverse_retries=5)
    cancel_is_tombstone: ClassVar[bool] = True

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        if not settings.app_id:
            raise ValueError("alipay: settings.app_id is required")
        self._key = t.load_private_key(Path(settings.private_key_file).read_text())
        self._alipay_key = t.load_public_key(Path(settings.provider_public_key_file).read_text())
        self._gateway = settings.base_url.rstrip("/") + t.GATEWAY_PATH
        extra = settings.extra
        mode = str(extra.get("sub_merchant_mode", "sub_merchant"))
        if mode not in ("sub_merchant", "app_auth_token"):
            raise ValueError(f"alipay: unknown sub_merchant_mode {mode!r}")
        self._auth_token_mode = mode == "app_auth_token"
        self._return_url: str | None = extra.get("return_url") or None
        self._quit_url: str | None = extra.get("quit_url") or None

    # -- plumbing -----------------------------------------------------------------
    def _signed(self, api_method: str, biz: Mapping[str, Any] | None, *, sub_mch_id: str | None,
                notify_url: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        params = t.common_params(
            app_id=self.settings.app_id, api_method=api_method, biz=biz, timestamp=datetime.now(timezone.utc),
            notify_url=notify_url, app_auth_token=sub_mch_id if self._auth_token_mode else None, extra=extra)
        return t.sign_params(params, self._key)

    async def _call(self, api_method: str, biz: Mapping[str, Any] | None, *, flow: Flow | str,
                    sub_mch_id: str | None, notify_url: str | None = None,
                    fields: Mapping[str, str] | None = None) -> tuple[dict[str, Any], bool]:
        """One gateway call: (the verified response member, whether it was signed)."""
        body, signed, _ = await self._answer(api_method, biz, flow=flow, sub_mch_id=sub_mch_id,
                                             notify_url=notify_url, fields=fields)
        return body, signed

    async def _answer(self, api_method: str, biz: Mapping[str, Any] | None, *, flow: Flow | str,
                      sub_mch_id: str | None, notify_url: str | None = None,
                      fields: Mapping[str, str] | None = None) -> tuple[dict[str, Any], bool, str]:
        """:meth:`_call` and the answer's member name (``<method>_response`` or ``error_response``)."""
        params = self._signed(api_method, biz, sub_mch_id=sub_mch_id, notify_url=notify_url, extra=fields)
        reply = await self.http.request("POST", self._gateway, flow=str(flow),
                                        headers={"Content-Type": t.FORM_CONTENT_TYPE}, data=urlencode(params))
        if reply.status >= 500:
            raise ChannelError(f"alipay {api_method}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        try:
            if reply.status != 200:
                raise ValueError(f"HTTP {reply.status}")
            answer = t.open_answer(reply.body.decode("utf-8"), api_method)
        except ValueError as e:  # UnicodeDecodeError and json errors are ValueErrors
            raise ChannelError(f"alipay {api_method}: unreadable answer ({e})", retriable=True,
                               kind="garbage") from e
        if answer.sign is not None and not t.rsa2_verify(self._alipay_key, answer.raw, answer.sign):
            raise ChannelError(f"alipay {api_method}: answer signature does not verify", retriable=True,
                               kind="bad_signature")
        return answer.body, answer.sign is not None, answer.key

    async def _checked(self, api_method: str, biz: Mapping[str, Any], *, flow: Flow, sub_mch_id: str | None,
                       notify_url: str | None = None) -> tuple[str, dict[str, Any]]:
        body, signed = await self._call(api_method, biz, flow=flow, sub_mch_id=sub_mch_id, notify_url=notify_url)
        return t.gateway_check(body, signed=signed), body

    # -- flows -------------------------------------------------------------------
    async def pay(self, req: PayRequest) -> ChannelResult:
        if not self.supports(req.method):
            raise UnsupportedFlow(self.name, f"{Flow.PAY}:{req.method}")
        sub = None if self._auth_token_mode else req.sub_mch_id
        spec = t.pay_biz(method=req.method, out_trade_no=req.out_trade_no, amount=req.amount, subject=req.subject,
                         expire_at=req.expire_at, auth_code=req.auth_code, payer=req.payer,
                         sub_merchant_id=sub, store_id=req.store_id, terminal_id=req.terminal_id,
                         quit_url=self._quit_url, royalty_freeze=req.profit_sharing)
        if req.method in (Method.H5, Method.APP):
            extra = {"return_url": self._return_url} if req.method is Method.H5 and self._return_url else None
            signed = self._signed(spec.api_method, spec.biz, sub_mch_id=req.sub_mch_id,
                                  notify_url=req.notify_url, extra=extra)
            order = t.order_string(signed)
            params = {"pay_url": f"{self._gateway}?{order}"} if req.method is Method.H5 else {"order_string": order}
            return ChannelResult(status=TradeStatus.PENDING, pay_params=params)
        code, body = await self._checked(spec.api_method, spec.biz, flow=Flow.PAY, sub_mch_id=req.sub_mch_id,
                                         notify_url=req.notify_url)
        return t.pay_result(code, body, req.method)

    payer_auth: ClassVar[bool] = True

    def payer_auth_url(self, redirect_uri: str, state: str) -> str:
        base = str(self.settings.extra.get("oauth_authorize_url", t.OAUTH_AUTHORIZE_URL))
        return t.oauth_authorize_url(base, self.settings.app_id, redirect_uri, state)

    async def payer_from_auth(self, callback: Mapping[str, str]) -> dict[str, str]:
        code = oauth.code_from(callback, "auth_code", self.name)
        body, signed, key = await self._answer(t.OAUTH_TOKEN, None, flow="payer_auth", sub_mch_id=None,
                                               fields=t.oauth_token_fields(code))
        return t.oauth_payer(key, body, signed=signed)

    async def query(self, ref: TradeRef) -> ChannelResult:
        code, body = await self._checked(t.QUERY, t.trade_biz(ref.out_trade_no, ref.channel_trade_no),
                                         flow=Flow.QUERY, sub_mch_id=ref.sub_mch_id)
        return t.query_result(code, body, ref.method)

    async def _queried_after_refusal(self, ref: TradeRef, body: Mapping[str, Any]) -> ChannelResult:
        """A cancel/close Alipay refused: the trade's real state, with the refusal attached."""
        res = await self.query(ref)
        res.failure_code = str(body.get("sub_code") or body.get("code"))
        res.failure_message = body.get("sub_msg") or body.get("msg")
        return res

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        body, signed = await self._call(t.CANCEL, t.trade_biz(ref.out_trade_no, ref.channel_trade_no),
                                        flow=Flow.REVERSE, sub_mch_id=ref.sub_mch_id)
        res = t.cancel_result(body, signed=signed)
        return res if res is not None else await self._queried_after_refusal(ref, body)

    async def close(self, ref: TradeRef) -> ChannelResult:
        code, body = await self._checked(t.CLOSE, t.trade_biz(ref.out_trade_no, ref.channel_trade_no),
                                         flow=Flow.CLOSE, sub_mch_id=ref.sub_mch_id)
        res = t.close_result(code, body)
        return res if res is not None else await self._queried_after_refusal(ref, body)

    async def refund(self, req: RefundRequest) -> RefundResult:
        biz = t.refund_biz(out_trade_no=req.out_trade_no, channel_trade_no=req.channel_trade_no,
                           out_refund_no=req.out_refund_no, refund_amount=req.refund_amount, reason=req.reason)
        code, body = await self._checked(t.REFUND, biz, flow=Flow.REFUND, sub_mch_id=req.sub_mch_id)
        res = t.refund_result(code, body)
        return res if res is not None else await self.query_refund(req)

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        biz = t.refund_query_biz(out_trade_no=req.out_trade_no, channel_trade_no=req.channel_trade_no,
                                 out_refund_no=req.out_refund_no)
        code, body = await self._checked(t.REFUND_QUERY, biz, flow=Flow.REFUND_QUERY, sub_mch_id=req.sub_mch_id)
        return t.refund_query_result(code, body)

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except ValueError as e:
            raise NotificationRejected("malformed", f"alipay notification is not a UTF-8 form: {e}") from e
        sign = params.get("sign")
        if not sign:
            raise NotificationRejected("bad_signature", "alipay notification without sign")
        if params.get("sign_type", t.SIGN_TYPE) != t.SIGN_TYPE:
            raise NotificationRejected("bad_signature", f"alipay notification sign_type {params['sign_type']!r}")
        if not t.rsa2_verify(self._alipay_key, t.notify_sign_content(params), sign):
            raise NotificationRejected("bad_signature", "alipay notification signature does not verify")
        try:
            return t.notification_from_form(params)
        except ValueError as e:
            raise NotificationRejected("malformed", str(e)) from e

    # -- money after the payment ------------------------------------------------------
    async def add_receiver(self, spec: ReceiverSpec) -> BindResult:
        biz = sh.bind_biz(spec, sh.bind_request_no(spec))
        code, body = await self._checked(sh.RELATION_BIND, biz, flow=Flow.SHARE, sub_mch_id=spec.sub_mch_id)
        return sh.bind_result(code, body)

    async def share(self, req: ShareRequest) -> ShareResult:
        code, body = await self._checked(sh.SETTLE, sh.settle_biz(req), flow=Flow.SHARE, sub_mch_id=req.sub_mch_id)
        accepted = sh.settle_result(code, body)
        if accepted.status is not ShareStatus.PROCESSING:
            return accepted
        # async mode: the answer only says it was accepted; one query often already has the outcome,
        # and one that does not find it yet is no reason to send it again
        res = await self.query_share(req)
        return res if res.status is not ShareStatus.NOT_FOUND else accepted

    async def query_share(self, req: ShareRequest) -> ShareResult:
        code, body = await self._checked(sh.SETTLE_QUERY, sh.settle_query_biz(req), flow=Flow.SHARE,
                                         sub_mch_id=req.sub_mch_id)
        return sh.settle_query_result(code, body, req)

    async def payout(self, req: PayoutRequest) -> PayoutResult:
        code, body = await self._checked(sh.TRANSFER, sh.transfer_biz(req), flow=Flow.PAYOUT, sub_mch_id=None)
        return sh.transfer_result(code, body)

    async def query_payout(self, req: PayoutRequest) -> PayoutResult:
        code, body = await self._checked(sh.TRANSFER_QUERY, sh.transfer_query_biz(req), flow=Flow.PAYOUT,
                                         sub_mch_id=None)
        return sh.transfer_result(code, body, query=True)

    def ack(self, ok: bool) -> Ack:
        # anything but "success" makes Alipay deliver again; a refusal is the sender's fault: a 4xx, never a 5xx
        return Ack(status=200 if ok else 400, body=t.NOTIFY_ACK_OK if ok else t.NOTIFY_ACK_FAIL,
                   content_type="text/plain")

    async def statement(self, day: date) -> list[StatementLine]:
        code, body = await self._checked(t.BILL_URL, t.bill_biz(day), flow=Flow.STATEMENT, sub_mch_id=None)
        if code == t.CODE_BUSINESS:
            if body.get("sub_code") == t.BILL_NOT_EXIST:
                return []
            raise ChannelError(f"alipay bill {day}: {body.get('sub_code')} {body.get('sub_msg')}",
                               retriable=False, kind="rejected")
        url = body.get("bill_download_url")
        if not url:
            raise ChannelError("alipay: bill answer without bill_download_url", retriable=True, kind="garbage")
        reply = await self.http.request("GET", url, flow=str(Flow.STATEMENT))
        if reply.status >= 500:
            raise ChannelError(f"alipay bill download: HTTP {reply.status}", retriable=True, kind="http_5xx")
        try:
            if reply.status != 200:
                raise ValueError(f"HTTP {reply.status}")
            return t.parse_bill(t.bill_detail_text(reply.body))
        except (ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as e:
            raise ChannelError(f"alipay bill {day}: unreadable ({e})", retriable=True, kind="garbage") from e


ADAPTER = AlipayAdapter
