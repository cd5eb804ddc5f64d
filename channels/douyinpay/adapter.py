"""Douyin Pay v1 adapter (抖音支付, api.douyinpay.com).

Follows Douyin Pay's merchant API documentation as channels.md §8 summarises
it and the public douyinpay SDKs show it: ``Authorization: DouyinPay-RSA
mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`` over the
same five-line string as WeChat v3; answers and notifications signed over
``timestamp\\nnonce\\nbody\\n`` in ``Douyinpay-Signature/-Timestamp/-Nonce/-Serial``;
notification resources AEAD_AES_256_GCM with the APIv3-style key. Orders
``/v1/trade/transactions/{native,jsapi,app,h5}``, query
``…/out-trade-no/{no}?mchid=``, close ``…/out-trade-no/{no}/close``, refund
``/v1/trade/refund/domestic/refunds`` (query ``…/refunds/{out_refund_no}``).
Transport and flows are shared with WeChat in :mod:`channels.wxv3.adapter`.

Choices where the facts are not settled:

* Statement: ``GET /v1/bill/billapply?bill_date=YYYY-MM-DD&bill_type=ALL``
  (the path public clients use) answering ``{download_url, hash_type,
  hash_value}`` like WeChat's tradebill; the file's layout is taken to be
  WeChat's trade bill (backtick-prefixed CSV, same column names) –
  *unconfirmed*, and parsed by column name so a reordering does not break it.
* App client parameters use ``package="Sign=DYPay"``; JSAPI parameters
  ``signType="DouyinPay-RSA"`` with ``paySign`` over
  ``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` (as public clients do).
* No service-provider mode is known: a payment with ``sub_mch_id`` raises
  ``ChannelError(retriable=False, kind="unsupported")``.
* Trade and refund states, error codes and the ack are WeChat's
  (SUCCESS/REFUND/NOTPAY/CLOSED/PAYERROR; ``{"code":"SUCCESS"}``).

Payer id (jsapi needs the customer's ``open_id``): Douyin's silent
authorisation for web pages inside Douyin (scope ``login_id``, granted to
Douyin Pay merchants), ``extra.oauth_authorize_url`` (default
aweme.snssdk.com ``/passport/open/silent_auth/``); the ``code`` is exchanged at
``extra.oauth_api_url`` (default open.douyin.com) ``POST /oauth/access_token/``
with the web app's ``client_key`` (``extra.oauth_client_key``, default
``app_id``) and client_secret (``app_secret``). Final answers: ``data.open_id``,
or a non-zero ``data.error_code`` (not retriable).

Recovery: Douyin has no barcode API, so an uncertain order is queried (first
after 5 s, then every 10 s) and, still unpaid after 300 s (paycore's default
order lifetime, *our choice*), closed: ``final_action="close"``.
"""
from __future__ import annotations

from typing import ClassVar, Mapping

from channels import oauth
from channels.base import Flow, Method, RecoveryRule
from channels.douyinpay import transformers as T
from channels.wxv3.adapter import V3Adapter


class DouyinPayAdapter(V3Adapter):
    name: ClassVar[str] = "douyinpay"
    profile: ClassVar[T.V3Profile] = T.PROFILE
    methods: ClassVar[frozenset[Method]] = T.PROFILE.methods
    flows: ClassVar[frozenset[Flow]] = frozenset({
        Flow.PAY, Flow.QUERY, Flow.REFUND, Flow.REFUND_QUERY, Flow.CLOSE, Flow.NOTIFY, Flow.STATEMENT})
    default_recovery: ClassVar[RecoveryRule] = RecoveryRule(
        first_delay=5.0, interval=10.0, give_up_after=300.0, final_action="close", reverse_retries=5)
    payer_auth: ClassVar[bool] = True

    def _client_key(self) -> str:
        return str(self.settings.extra.get("oauth_client_key") or self.settings.app_id)

    def payer_auth_ready(self) -> bool:
        return bool(self.settings.app_secret)

    def payer_auth_url(self, redirect_uri: str, state: str) -> str:
        base = str(self.settings.extra.get("oauth_authorize_url", T.OAUTH_AUTHORIZE_URL))
        return T.oauth_authorize_url(base, self._client_key(), redirect_uri, state)

    async def payer_from_auth(self, callback: Mapping[str, str]) -> dict[str, str]:
        code = oauth.code_from(callback, "code", self.name)
        url, body = T.oauth_token_request(str(self.settings.extra.get("oauth_api_url", T.OAUTH_API_URL)),
                                          self._client_key(), self.settings.app_secret.get_bytes().decode(), code)
        reply = await self.http.request("POST", url, flow="payer_auth", data=body,
                                        headers={"Content-Type": "application/json"})
        return T.oauth_payer(reply.status, reply.body)


ADAPTER = DouyinPayAdapter
