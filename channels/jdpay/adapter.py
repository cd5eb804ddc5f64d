"""JD Pay (京东支付) adapter: the paygate XML envelope with 3DES + raw-RSA signing.

Follows JD Pay's merchant API ("京东支付 商户接口文档 V2.0": 付款码支付
``/service/fkmPay``, 统一下单 ``/service/uniorder``, 交易查询
``/service/query``, 退款申请 ``/service/refund``, 撤销 ``/service/revoke``) as
public SDKs implement it (IJPay's JdPay module: envelope, JD's 3DES framing,
the RSA "private-key encryption" of the hex SHA-256); see
:mod:`channels.jdpay.transformers` for the byte-level details.

Methods: barcode (fkmPay, ``token`` = the customer's payment code), qr
(uniorder ``tradeType=QR`` → ``qrCode``), h5 (uniorder ``tradeType=GEN`` →
``orderId``; pay_params carry it and a cashier URL built from the template
``extra["h5_pay_url"]`` (default :data:`DEFAULT_H5_PAY_URL`; the cashier URL's
shape is *unconfirmed*)).

Choices where JD's documentation is not public (*unconfirmed*; all tables
live in :class:`~channels.jdpay.transformers.JdCodes` and can be overridden
through settings.extra):

* result codes: ``000000`` accepted; ``000002`` customer still paying;
  ``999999`` system error (retriable, query); ``000001``/``000003`` our
  signature/encryption was refused (a non-retriable ChannelError, kind
  ``auth``); ``000009`` no such trade; anything else is a decline returned as
  FAILED with JD's code (``100001`` insufficient balance, ``100002`` refund
  refused). Answers that carry ``encrypt`` are decrypted and verified;
  envelope-level failures carry only ``result`` and are therefore unsigned
  (the simulator signs every business answer, declines included; an
  unsigned refusal such as a parameter error means JD did not process the
  request and is returned as FAILED with its code).
* ``<status>``: 0 created, 1 processing/user paying, 2 success, 3 partly
  refunded, 4 fully refunded, 5 failed, 6 closed, 7 revoked.
* refunds: ``/service/refund`` with ``tradeNum`` = the paycore refund id and
  ``oTradeNum`` = the payment; refund query: ``/service/query`` with
  ``tradeType=1``; revoke's own ``tradeNum`` is ``rvk_`` + the payment id's
  tail, so a repeated revoke is the same request.
* close: JD has no close call; :meth:`JdPayAdapter.close` queries and, unless
  the order is already final, revokes it (JD answers status 6 for an unpaid
  order it closed, 7 if it had to reverse a payment).
* statement: ``POST /service/downloadBill`` (same envelope, ``billDate``
  yyyyMMdd) answering ``billData`` = Base64 of a UTF-8 CSV with the header
  ``tradeNum,oTradeNum,tradeType,orderId,amount,currency,status,tradeTime``.
* notifications: JD posts the same envelope (XML) to notifyUrl; acknowledged
  with the plain text ``success`` (``fail`` with HTTP 400 makes JD retry).
* recovery (default_recovery): JD publishes no barcode rule, so the WeChat
  rule of channels.md §1 is used: first query 5 s after an unknown outcome,
  every 10 s, reverse (``/service/revoke``) after 30 s, reverse repeated on
  failure.

Final provider answers (docs/reliability.md has the table of every channel):
success, failed, closed and revoked states, a refund's success/failure; not final: created/
processing, system errors, 000009 (not found), timeouts, a close's "not found".
"""
from __future__ import annotations

import base64
import binascii
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import (
    Ack, ChannelAdapter, ChannelError, ChannelResult, ChannelSettings, Flow, Method, Notification,
    NotificationRejected, PayRequest, RecoveryRule, RefundRequest, RefundResult, StatementLine, TradeRef,
    TradeStatus, UnsupportedFlow,
)
from channels.http import ChannelHttp
from channels.jdpay import transformers as tf

DEFAULT_H5_PAY_URL = "https://h5pay.jd.com/jdpay/cashier?merchant={merchant}&orderId={orderId}&tradeNum={tradeNum}"


def load_private_key(path: str) -> rsa.RSAPrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def load_public_key(path: str) -> rsa.RSAPublicKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path}: not an RSA public key")
    return key


class JdPayAdapter(ChannelAdapter):
    name = "jdpay"
    methods = frozenset({Method.BARCODE, Method.QR, Method.H5})
    flows = frozenset({Flow.PAY, Flow.QUERY, Flow.REFUND, Flow.REFUND_QUERY, Flow.REVERSE, Flow.CLOSE,
                       Flow.NOTIFY, Flow.STATEMENT})
    #: channels.md §1's WeChat barcode rule, JD publishing none (see the module docstring)
    default_recovery = RecoveryRule(first_delay=5.0, interval=10.0, give_up_after=30.0, final_action="reverse",
                                    reverse_retries=5)

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        self._key = load_private_key(settings.private_key_file)
        self._provider_key = load_public_key(settings.provider_public_key_file)
        self._des = tf.des_key_bytes(str(settings.extra["des_key"]))
        self._codes = tf.JdCodes.from_extra(settings.extra)
        self._base = settings.base_url.rstrip("/")
        self._merchant = settings.mch_id
        self._h5_url = str(settings.extra.get("h5_pay_url", DEFAULT_H5_PAY_URL))

    # -- transport --------------------------------------------------------
    async def _call(self, path: str, fields: Sequence[tuple[str, Any]], flow: Flow) -> tf.Envelope:
        """One request; returns the answer's envelope, or raises ChannelError for faults."""
        body = tf.seal(self._key, self._des, self._merchant, fields)
        reply = await self.http.request("POST", f"{self._base}{path}", flow=str(flow), data=body,
                                        headers={"Content-Type": "application/xml;charset=UTF-8"})
        if reply.status >= 500:
            raise ChannelError(f"jdpay {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        if reply.status != 200:
            raise ChannelError(f"jdpay {flow}: HTTP {reply.status}", retriable=True, kind="garbage")
        try:
            env = tf.open_envelope(self._provider_key, self._des, reply.body)
        except tf.EnvelopeError as e:
            kind = "bad_signature" if e.reason == "bad_signature" else "garbage"
            raise ChannelError(f"jdpay {flow}: {e}", retriable=True, kind=kind) from e
        if env.code in self._codes.system_error_codes:
            raise ChannelError(f"jdpay {flow}: system error {env.code} {env.desc or ''}".rstrip(),
                               retriable=True, kind="system_error")
        if env.code in self._codes.sign_error_codes:
            raise ChannelError(f"jdpay {flow}: request refused {env.code} {env.desc or ''}".rstrip(),
                               retriable=False, kind="auth")
        if env.code is None:
            raise ChannelError(f"jdpay {flow}: answer without result code", retriable=True, kind="garbage")
        return env

    def _trade(self, env: tf.Envelope, flow: Flow) -> ChannelResult:
        try:
            return tf.trade_result(env.code, env.desc, env.fields, self._codes)
        except ValueError as e:
            raise ChannelError(f"jdpay {flow}: {e}", retriable=True, kind="garbage") from e

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    # -- flows ------------------------------------------------------------
    async def pay(self, req: PayRequest) -> ChannelResult:
        match req.method:
            case Method.BARCODE:
                if not req.auth_code:
                    raise ValueError("barcode payment without auth_code")
                env = await self._call("/service/fkmPay", tf.fkmpay_request(req, self._merchant, self._now()),
                                       Flow.PAY)
                return self._trade(env, Flow.PAY)
            case Method.QR | Method.H5:
                trade_type = "QR" if req.method is Method.QR else "GEN"
                env = await self._call("/service/uniorder",
                                       tf.uniorder_request(req, self._merchant, self._now(), trade_type), Flow.PAY)
                if env.code != tf.CODE_OK:
                    return self._trade(env, Flow.PAY)
                f = env.fields or {}
                order_id = f.get("orderId") or None
                if req.method is Method.QR:
                    if not f.get("qrCode"):
                        raise ChannelError("jdpay pay: uniorder answer without qrCode", retriable=True, kind="garbage")
                    return ChannelResult(TradeStatus.PENDING, channel_trade_no=order_id, qr_code=f["qrCode"])
                if not order_id:
                    raise ChannelError("jdpay pay: uniorder answer without orderId", retriable=True, kind="garbage")
                url = self._h5_url.format(merchant=self._merchant, orderId=order_id,
                                          tradeNum=tf.to_trade_num(req.out_trade_no))
                return ChannelResult(TradeStatus.PENDING, channel_trade_no=order_id,
                                     pay_params={"orderId": order_id, "merchant": self._merchant, "pay_url": url})
            case _:
                raise UnsupportedFlow(self.name, f"{Flow.PAY}:{req.method}")

    async def query(self, ref: TradeRef) -> ChannelResult:
        env = await self._call("/service/query", tf.query_request(
            self._merchant, tf.to_trade_num(ref.out_trade_no), tf.TRADE_TYPE_PAY), Flow.QUERY)
        return self._trade(env, Flow.QUERY)

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        env = await self._call("/service/revoke", tf.revoke_request(ref, self._merchant, self._now()), Flow.REVERSE)
        if env.code == tf.CODE_OK and not (env.fields or {}).get("status"):
            return ChannelResult(TradeStatus.REVERSED)
        return self._trade(env, Flow.REVERSE)

    async def close(self, ref: TradeRef) -> ChannelResult:
        current = await self.query(ref)
        if current.status not in (TradeStatus.PENDING, TradeStatus.PROCESSING):
            return current
        env = await self._call("/service/revoke", tf.revoke_request(ref, self._merchant, self._now()), Flow.CLOSE)
        return self._trade(env, Flow.CLOSE)

    async def refund(self, req: RefundRequest) -> RefundResult:
        env = await self._call("/service/refund", tf.refund_request(req, self._merchant, self._now()), Flow.REFUND)
        return self._refund(env, Flow.REFUND)

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        env = await self._call("/service/query", tf.query_request(
            self._merchant, tf.to_trade_num(req.out_refund_no), tf.TRADE_TYPE_REFUND,
            tf.to_trade_num(req.out_trade_no)), Flow.REFUND_QUERY)
        return self._refund(env, Flow.REFUND_QUERY)

    def _refund(self, env: tf.Envelope, flow: Flow) -> RefundResult:
        try:
            return tf.refund_result(env.code, env.desc, env.fields, self._codes)
        except ValueError as e:
            raise ChannelError(f"jdpay {flow}: {e}", retriable=True, kind="garbage") from e

    # -- notifications ----------------------------------------------------
    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            env = tf.open_envelope(self._provider_key, self._des, body)
        except tf.EnvelopeError as e:
            raise NotificationRejected(e.reason, f"jdpay: {e}") from e
        if env.fields is None:
            raise NotificationRejected("malformed", "jdpay: notification without encrypt")
        if env.merchant != self._merchant:
            raise NotificationRejected("unknown_merchant", f"jdpay: notification for merchant {env.merchant}")
        try:
            return tf.notification(env, self._codes)
        except ValueError as e:
            raise NotificationRejected("malformed", f"jdpay: {e}") from e

    def ack(self, ok: bool) -> Ack:
        return Ack(200, b"success") if ok else Ack(400, b"fail")

    # -- statement --------------------------------------------------------
    async def statement(self, day: date) -> list[StatementLine]:
        env = await self._call("/service/downloadBill", tf.bill_request(self._merchant, day), Flow.STATEMENT)
        if env.code != tf.CODE_OK or env.fields is None:
            raise ChannelError(f"jdpay statement: {env.code} {env.desc or ''}".rstrip(), retriable=False,
                               kind="statement")
        try:
            text = base64.b64decode(env.fields.get("billData") or "", validate=True).decode("utf-8")
            return tf.parse_bill(text)
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise ChannelError(f"jdpay statement: {e}", retriable=True, kind="garbage") from e


ADAPTER = JdPayAdapter
