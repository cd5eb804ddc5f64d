"""QQ Wallet (QQ钱包, qpay) v2 adapter: XML over HTTPS, MD5 / HMAC-SHA256.

Follows the qpay merchant docs (mp.qpay.tenpay.cn/buss/wiki: 提交付款码支付,
统一下单, 订单查询, 关闭订单, 撤销订单, 申请退款, 退款查询, 对账单下载, 商户签名算法)
and channels.md §7; field names were cross-checked against IJPay's QQ module.

Endpoints: ``/cgi-bin/pay/qpay_micro_pay.cgi`` (barcode, ``auth_code``),
``qpay_unified_order.cgi`` (qr: trade_type NATIVE → ``code_url``; jsapi:
JSAPI → ``prepay_id``, handed to the QQ JS API as ``tokenId``),
``qpay_order_query.cgi``, ``qpay_close_order.cgi``, ``qpay_refund_query.cgi``
and ``/cgi-bin/sp_download/qpay_mch_statement_down.cgi`` on ``base_url``
(qpay.qq.com); ``qpay_reverse.cgi`` and ``qpay_refund.cgi`` on
``extra.api_base_url`` (api.qpay.qq.com; defaults to ``base_url``). Those two
need qpay's client certificate in production: the TLS client certificate is
the HTTP session's business and is not modelled here.

Every answer with ``return_code=SUCCESS`` is signature-checked; an answer
with ``return_code=FAIL`` (signature or format refused, unsigned) means qpay
did not act on the request and raises a non-retriable ChannelError.

Choices where the facts are unconfirmed (settings.extra):

* ``sign_type``: ``MD5`` (default; qpay's documented algorithm) or
  ``HMAC-SHA256``, which is then also sent as the ``sign_type`` parameter the
  way WeChat Pay v2 does it. Answers and notifications are verified with the
  configured type only (no downgrade by a field in the message).
* ``strip_underscore`` (default False): qpay documents out_trade_no as "32
  characters, letters allowed" and follows WeChat v2, which allows ``_``, so
  paycore ids go as they are; set True to send ``pay<24>`` instead of
  ``pay_<24>`` (mapped back exactly in answers, notifications, statements).
* ``op_user_id`` (default mch_id) and ``op_user_passwd`` (the operator's
  password; its MD5 is sent, as qpay asks) for refund and reverse.
* ``pub_acc``: the official account put in jsapi pay_params as ``pubAcc``.
* ``notify_url`` is sent with micropay too (qpay ignores what it does not
  use); the payment code prefix ``^91\\d{16}$`` is *unconfirmed* and lives in
  the routing config, not here.
* Refunds: qpay_refund.cgi only accepts a refund (PROCESSING); its outcome
  comes from qpay_refund_query.cgi. qpay documents no refund notification.
* Statement: qpay_mch_statement_down.cgi with ``bill_type=ALL`` answers a
  WeChat-v2-style CSV (backtick-prefixed fields, totals at the end, yuan
  amounts); columns are located by header name; "No Bill Exist" is an empty day.

Recovery (qpay's 提交付款码支付 notes, the WeChat v2 micropay rule): after
SYSTEMERROR wait 5 s then query; on USERPAYING query every 10 s up to 30 s;
still unknown → reverse, and call reverse again on no answer or error.

Final provider answers (docs/reliability.md has the table of every channel):
SUCCESS, PAYERROR, CLOSED, REVOKED, a refund's SUCCESS/FAIL; not final: USERPAYING,
SYSTEMERROR, ORDERNOTEXIST, timeouts, a close's "not found", REFUNDNOTEXIST (re-send the same number).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import date
from typing import Mapping

from channels.base import (Ack, ChannelAdapter, ChannelError, ChannelResult, ChannelSettings, Flow, Method,
                           Notification, NotificationRejected, PayRequest, RecoveryRule, RefundRequest,
                           RefundResult, StatementLine, TradeRef, UnsupportedFlow)
from channels.http import ChannelHttp
from channels.qqwallet import transformers as tf

_XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}



class QqWalletAdapter(ChannelAdapter):
    name = "qqwallet"
    methods = frozenset({Method.BARCODE, Method.QR, Method.JSAPI})
    flows = frozenset({Flow.PAY, Flow.QUERY, Flow.REVERSE, Flow.CLOSE, Flow.REFUND, Flow.REFUND_QUERY,
                       Flow.NOTIFY, Flow.STATEMENT})
    #: qpay micropay notes: SYSTEMERROR → query after 5 s; USERPAYING → every 10 s up to 30 s; then reverse
    default_recovery = RecoveryRule(first_delay=5.0, interval=10.0, give_up_after=30.0, final_action="reverse")

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        extra = settings.extra
        key = settings.secret.get()
        self._key = key.decode() if isinstance(key, bytes) else key
        self._sign_type = str(extra.get("sign_type", tf.SIGN_MD5)).upper()
        if self._sign_type not in tf.SIGN_TYPES:
            raise ValueError(f"qqwallet: sign_type must be one of {tf.SIGN_TYPES}")
        self._strip = bool(extra.get("strip_underscore", False))
        self._ids = {"mch_id": settings.mch_id, "appid": settings.app_id}
        self._pub_acc = str(extra.get("pub_acc", ""))
        self._op_user_id = str(extra.get("op_user_id", settings.mch_id))
        passwd = str(extra.get("op_user_passwd", ""))
        self._op_user_passwd = hashlib.md5(passwd.encode()).hexdigest() if passwd else ""
        base = settings.base_url.rstrip("/")
        api = str(extra.get("api_base_url", base)).rstrip("/")
        self._urls = {call: (api if call in tf.API_HOST_CALLS else base) + path
                      for call, path in tf.PATHS.items()}

    # -- transport ----------------------------------------------------------
    async def _send(self, call: str, flow: Flow, params: Mapping[str, str | None]) -> bytes:
        body = tf.to_xml(tf.signed(params, self._key, self._sign_type, secrets.token_hex(16)))
        reply = await self.http.request("POST", self._urls[call], flow=flow, headers=_XML_HEADERS, data=body)
        if reply.status >= 500:
            raise ChannelError(f"qqwallet {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        return reply.body

    async def _call(self, call: str, flow: Flow, params: Mapping[str, str | None]) -> dict[str, str]:
        body = await self._send(call, flow, params)
        try:
            d = tf.parse_xml(body)
        except ValueError as e:
            raise ChannelError(f"qqwallet {flow}: unparseable answer ({e})", retriable=True, kind="garbage") from e
        if d.get("return_code") != "SUCCESS":
            raise ChannelError(f"qqwallet {flow}: refused: {d.get('return_msg', '')}", retriable=False,
                               kind="rejected")
        if not tf.verify(d, self._key, self._sign_type):
            raise ChannelError(f"qqwallet {flow}: bad answer signature", retriable=True, kind="bad_signature")
        return d

    # -- flows --------------------------------------------------------------
    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method not in self.methods and req.method is not Method.SONIC:
            raise UnsupportedFlow(self.name, f"pay/{req.method}")
        params = tf.pay_params(req, strip_underscore=self._strip, **self._ids)
        if req.method in (Method.BARCODE, Method.SONIC):
            return tf.micropay_result(await self._call("micropay", Flow.PAY, params))
        return tf.unified_order_result(await self._call("unified_order", Flow.PAY, params), req.method,
                                       self._pub_acc)

    async def query(self, ref: TradeRef) -> ChannelResult:
        params = tf.trade_params(ref, strip_underscore=self._strip, **self._ids)
        return tf.query_result(await self._call("order_query", Flow.QUERY, params))

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        params = dict(tf.trade_params(ref, strip_underscore=self._strip, **self._ids),
                      op_user_id=self._op_user_id, op_user_passwd=self._op_user_passwd)
        return tf.reverse_result(await self._call("reverse", Flow.REVERSE, params))

    async def close(self, ref: TradeRef) -> ChannelResult:
        params = tf.trade_params(ref, strip_underscore=self._strip, **self._ids)
        return tf.close_result(await self._call("close_order", Flow.CLOSE, params))

    async def refund(self, req: RefundRequest) -> RefundResult:
        params = tf.refund_params(req, strip_underscore=self._strip, op_user_id=self._op_user_id,
                                  op_user_passwd=self._op_user_passwd, **self._ids)
        return tf.refund_result(await self._call("refund", Flow.REFUND, params))

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        params = tf.refund_query_params(req, strip_underscore=self._strip, **self._ids)
        d = await self._call("refund_query", Flow.REFUND_QUERY, params)
        return tf.refund_query_result(d, tf.to_qpay_no(req.out_refund_no, self._strip))

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        if kind != "payment":
            raise NotificationRejected("malformed", "qpay sends payment notifications only")
        try:
            d = tf.parse_xml(body)
        except ValueError as e:
            raise NotificationRejected("malformed", str(e)) from e
        if not d.get("sign") or not tf.verify(d, self._key, self._sign_type):
            raise NotificationRejected("bad_signature")
        try:
            return tf.payment_notification(d, strip_underscore=self._strip)
        except (ValueError, ChannelError) as e:
            raise NotificationRejected("malformed", str(e)) from e

    def ack(self, ok: bool) -> Ack:
        # a FAIL answer must make qpay retry: say it in the body and the status
        return Ack(status=200 if ok else 500, body=tf.ack_xml(ok), content_type="text/xml")

    async def statement(self, day: date) -> list[StatementLine]:
        body = await self._send("statement", Flow.STATEMENT, tf.statement_params(day, **self._ids))
        if body.lstrip().startswith(b"<xml>"):
            # errors come as signed-less XML; "No Bill Exist" is a day without trades
            try:
                d = tf.parse_xml(body)
            except ValueError as e:
                raise ChannelError(f"qqwallet statement: {e}", retriable=True, kind="garbage") from e
            if tf.NO_BILL in d.get("return_msg", ""):
                return []
            raise ChannelError(f"qqwallet statement: {d.get('return_msg', '')}", retriable=False, kind="rejected")
        try:
            return tf.parse_statement(body.decode("utf-8"), strip_underscore=self._strip)
        except (ValueError, UnicodeDecodeError) as e:
            raise ChannelError(f"qqwallet statement: unparseable ({e})", retriable=True, kind="garbage") from e


ADAPTER = QqWalletAdapter
