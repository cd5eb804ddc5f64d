"""WeChat Pay API v3 adapter.

Follows WeChat Pay's APIv3 merchant documentation (pay.weixin.qq.com/doc/v3):
signing (签名生成 / 签名验证), notification decryption (证书和回调报文解密),
付款码支付 ``/v3/pay/transactions/codepay``, Native/JSAPI/H5/APP 下单, 查询订单,
撤销订单, 关闭订单, 申请退款 / 查询单笔退款 ``/v3/refund/domestic/refunds``, 退款结果通知,
申请交易账单 ``/v3/bill/tradebill`` and the trade bill file; and the
service-provider (服务商) variants under ``/v3/pay/partner/transactions``,
used when a payment names a ``sub_mch_id``. The shared transport and flows
are in :mod:`channels.wxv3.adapter`.

Choices where the facts are not settled (channels.md):

* USERPAYING on codepay is accepted both as an error ``code`` (any HTTP
  status) and as ``trade_state`` in a 200 transaction.
* Codepay sends no ``notify_url`` (WeChat reports codepay synchronously);
  ``scene_info.store_info.out_id`` is the payment's ``store_id`` or
  ``extra.default_store_id`` (default ``"paycore"``).
* A 401 (SIGN_ERROR and other authentication refusals) raises
  ``ChannelError(retriable=False, kind="auth")``: nothing was done, and
  retrying cannot help. Other 4xx answers to pay are declines
  (FAILED with WeChat's ``code``), e.g. NOTENOUGH, AUTH_CODE_INVALID,
  PARAM_ERROR.
* Reverse answers 2xx → REVERSED; USERPAYING/SYSTEMERROR as a 4xx error →
  ``retry=True``; 5xx → ChannelError(retriable) so recovery calls it again.
* Refund status ABNORMAL and CLOSED map to FAILED (no money moved).
* The trade bill is requested with ``bill_type=ALL``, no gzip; the file is
  fetched from the configured base URL using the path of ``download_url``
  and checked against ``hash_type``/``hash_value``.

Profit sharing and transfers (:mod:`channels.wechatpay.sharing` has the wire facts and which
answers are final): receivers are bound with 添加分账接收方; a split is 请求分账 (``finish`` →
``unfreeze_unsplit``), a split without receivers and ``finish`` is 解冻剩余资金; a refund of a
shared payment first takes shares back with 请求分账回退; payouts are 商家转账 ``transfer-bills``
to an openid under ``extra.transfer_scene_id`` (default 1005, 佣金报酬). A real name (receiver
or payee) is sent only RSA-OAEP-encrypted under the platform key named by
``provider_serial_no`` in ``Wechatpay-Serial``.

Payer id (jsapi needs the customer's ``openid`` under ``app_id``): the
official account's web authorisation, ``snsapi_base`` (silent), at
``extra.oauth_authorize_url`` (default open.weixin.qq.com's
``/connect/oauth2/authorize``); the ``code`` it returns is exchanged at
``extra.oauth_api_url`` (default api.weixin.qq.com) ``/sns/oauth2/access_token``
with the AppSecret (``app_secret`` / ``app_secret_file``). Final answers: an
``openid``, or an ``errcode`` (the code is spent or wrong: not retriable).

Recovery (channels.md §1, barcode rule): on SYSTEMERROR wait 5 s then query;
on USERPAYING query about every 10 s up to about 30 s; still unknown →
reverse, and call reverse again on no answer or error.

Final provider answers (docs/reliability.md has the table of every channel):
as channels/wxv3 (WeChat Pay v3): SUCCESS, PAYERROR, CLOSED, REVOKED and a refund's
SUCCESS/ABNORMAL/CLOSED; not final: NOTPAY, USERPAYING, SYSTEMERROR, ORDER_NOT_EXIST, timeouts, a
refund query's RESOURCE_NOT_EXISTS (re-send the same out_refund_no).
"""
from __future__ import annotations

from typing import ClassVar, Mapping

from channels import oauth
from channels.base import ChannelResult, Flow, Method, NotificationRejected, PayRequest, RecoveryRule, TradeRef
from channels.transfers import (BindResult, PayoutNotice, PayoutRequest, PayoutResult, ReceiverSpec, ShareRequest,
                                ShareResult, ShareReturnRequest, ShareReturnResult)
from channels.wechatpay import sharing as S
from channels.wechatpay import transformers as T
from channels.wxv3 import crypto
from channels.wxv3.adapter import V3Adapter


class WechatPayAdapter(V3Adapter):
    name: ClassVar[str] = "wechatpay"
    profile: ClassVar[T.V3Profile] = T.PROFILE
    methods: ClassVar[frozenset[Method]] = T.PROFILE.methods
    flows: ClassVar[frozenset[Flow]] = frozenset({
        Flow.PAY, Flow.QUERY, Flow.REFUND, Flow.REFUND_QUERY, Flow.REVERSE, Flow.CLOSE, Flow.NOTIFY,
        Flow.STATEMENT, Flow.SHARE, Flow.PAYOUT})
    receiver_types: ClassVar[frozenset[str]] = frozenset(S.RECEIVER_TYPES)
    payout_types: ClassVar[frozenset[str]] = S.PAYOUT_TYPES
    #: a share can be taken back from a receiver before a refund (分账回退), and must be
    shares_return_before_refund: ClassVar[bool] = True
    default_recovery: ClassVar[RecoveryRule] = RecoveryRule(
        first_delay=5.0, interval=10.0, give_up_after=30.0, final_action="reverse", reverse_retries=5)

    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method is not Method.BARCODE:
            return await super().pay(req)
        ids = self._ids(req)
        body = T.codepay_body(req, ids, str(self.settings.extra.get("default_store_id", "paycore")))
        reply = await self._call("POST", T.order_path(self.profile, Method.BARCODE, ids), flow="pay", body=body)
        return T.codepay_result(reply.status, reply.data)

    payer_auth: ClassVar[bool] = True

    def payer_auth_ready(self) -> bool:
        return bool(self.settings.app_secret)

    def payer_auth_url(self, redirect_uri: str, state: str) -> str:
        base = str(self.settings.extra.get("oauth_authorize_url", T.OAUTH_AUTHORIZE_URL))
        return T.oauth_authorize_url(base, self.settings.app_id, redirect_uri, state)

    async def payer_from_auth(self, callback: Mapping[str, str]) -> dict[str, str]:
        code = oauth.code_from(callback, "code", self.name)
        url = T.oauth_token_url(str(self.settings.extra.get("oauth_api_url", T.OAUTH_API_URL)),
                                self.settings.app_id, self.settings.app_secret.get_bytes().decode(), code)
        reply = await self.http.request("GET", url, flow="payer_auth")
        return T.oauth_payer(reply.status, reply.body)

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        ids = self._ids(ref)
        reply = await self._call("POST", T.reverse_path(ref.out_trade_no, ids), flow="reverse",
                                 body=T.reverse_body(ids))
        return T.reverse_result(reply.status, reply.data)


    # -- money after the payment ------------------------------------------------------
    def _sensitive(self, name: str | None) -> tuple[str | None, dict[str, str]]:
        """(the encrypted name, the header naming the key it is encrypted for)."""
        if not name:
            return None, {}
        return crypto.oaep_encrypt(self._provider_key, name), {"Wechatpay-Serial": self.settings.provider_serial_no}

    async def add_receiver(self, spec: ReceiverSpec) -> BindResult:
        name, headers = self._sensitive(spec.name)
        ids = T.V3Ids(self.settings.mch_id, self.settings.app_id, spec.sub_mch_id or None)
        reply = await self._call("POST", S.RECEIVERS_ADD, flow="share", body=S.receiver_body(spec, ids, name),
                                 extra_headers=headers)
        return S.bind_result(reply.status, reply.data)

    async def share(self, req: ShareRequest) -> ShareResult:
        ids = self._ids(req)
        if not req.lines:
            reply = await self._call("POST", S.UNFREEZE, flow="share", body=S.unfreeze_body(req, ids))
        else:
            reply = await self._call("POST", S.ORDERS, flow="share", body=S.share_body(req, ids))
        return S.share_result(reply.status, reply.data)

    async def query_share(self, req: ShareRequest) -> ShareResult:
        reply = await self._call("GET", S.share_query_path(req, self._ids(req)), flow="share")
        return S.share_result(reply.status, reply.data)

    async def return_share(self, req: ShareReturnRequest) -> ShareReturnResult:
        reply = await self._call("POST", S.RETURNS, flow="share", body=S.return_body(req, self._ids(req)))
        return S.return_result(reply.status, reply.data)

    async def query_share_return(self, req: ShareReturnRequest) -> ShareReturnResult:
        reply = await self._call("GET", S.return_query_path(req, self._ids(req)), flow="share")
        return S.return_result(reply.status, reply.data)

    async def payout(self, req: PayoutRequest) -> PayoutResult:
        name, headers = self._sensitive(req.name)
        body = S.transfer_body(req, self.settings.app_id, str(self.settings.extra.get("transfer_scene_id", "1005")),
                               name)
        reply = await self._call("POST", S.TRANSFER_BILLS, flow="payout", body=body, extra_headers=headers)
        return S.transfer_result(reply.status, reply.data)

    async def query_payout(self, req: PayoutRequest) -> PayoutResult:
        reply = await self._call("GET", S.transfer_query_path(req), flow="payout")
        return S.transfer_result(reply.status, reply.data)

    async def parse_payout_notification(self, headers: Mapping[str, str], body: bytes) -> PayoutNotice:
        """商家转账回调通知: signed and AES-GCM encrypted like every v3 notification; final states
        (SUCCESS, FAIL, CANCELLED) are applied like a query's answer, the others change nothing."""
        envelope, plain = self.open_notification(headers, body)
        try:
            return S.transfer_notification(envelope, plain)
        except ValueError as e:
            raise NotificationRejected("malformed", str(e)) from None


ADAPTER = WechatPayAdapter
