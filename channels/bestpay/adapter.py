"""Bestpay (翼支付) barcode adapter: form posts with a fixed-order MD5 ``mac``.

Follows Bestpay's "条码支付接口" document (webpaywg.bestpay.com.cn:
``/barcode/placeOrder``, ``/query/queryOrder``, ``/refund/commonRefund``,
``/reverse/reverse``) as public SDKs implement it (field names and the mac
orders in :mod:`channels.bestpay.transformers`). The mac key is
``settings.secret``; refund and reverse also carry the merchant's
transaction password ``extra["merchant_pwd"]`` (empty if unset) and
placeOrder a ``storeId`` (``PayRequest.store_id``, else ``extra["store_id"]``,
default ``"0001"``).

Choices where Bestpay's documents are not public (*unconfirmed*; the tables
are :class:`~channels.bestpay.transformers.BestpayCodes`, overridable through
settings.extra):

* answers ``{success, result, errorCode, errorMsg}``; a successful answer's
  ``result.sign`` is verified (fixed orders in the transformers module) and
  a wrong one is ChannelError(kind ``bad_signature``); ``success=false`` is
  unsigned: ``SYSTEM_ERROR``/``TIME_OUT`` raise ChannelError(retriable,
  ``system_error``), ``MAC_ERROR`` raises a non-retriable ChannelError
  (``auth``: our mac was refused, nothing happened), ``ORDER_NOT_EXIST`` is
  NOT_FOUND, anything else is a decline (FAILED with Bestpay's errorCode,
  e.g. ``BALANCE_NOT_ENOUGH``).
* ``transStatus`` A → PROCESSING (user paying), B → SUCCEEDED, C → FAILED,
  D → REVERSED.
* reverse (``/reverse/reverse``) uses a refundReqNo derived from the payment
  (``rev`` + the order number's tail) so a repeated reverse is idempotent;
  success → REVERSED. There is no close (barcode only) and no refund query:
  commonRefund's success is taken as the refund being made.
* notifications: form posts to backUrl (payment: ``MERCHANTID, UPTRANSEQ,
  ORDERSEQ, ORDERREQTRANSEQ, ORDERAMOUNT`` (fen), ``RETNCODE`` (0000 =
  paid), ``RETNINFO, TRANDATE, ENCODETYPE, SIGN``) and to bgUrl (refund:
  ``MERCHANTID, OLDORDERNO, REFUNDREQNO, OURTRANSNO, TRANSAMT, TRANSSTATUS,
  SIGN``), acknowledged with the plain text ``SUCCESS`` (Bestpay's web
  gateway wants ``UPTRANSEQ_<no>``, which a stateless ack cannot echo).
* statement: ``POST /reconciliation/download`` (``merchantId, fileDate``
  yyyyMMdd, mac over ``MERCHANTID, FILEDATE, KEY``) answering a
  pipe-separated text file (layout in ``parse_statement``).
* recovery (default_recovery): first query 5 s after an unknown outcome,
  every 10 s, reverse after 60 s (Bestpay's barcode orders wait longer for the
  customer's password than WeChat's), reverse repeated on failure.

Final provider answers (docs/reliability.md has the table of every channel):
SUCCESS, FAIL, a refund's synchronous success or refusal; not final: ORDER_NOT_EXIST, system
errors, timeouts. Bestpay has no refund query: an unknown refund is re-sent with the same refundReqNo
and, still unknown after the channel's refund_deadline, goes to the attention queue.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Mapping
from urllib.parse import urlencode

from channels.base import (
    Ack, ChannelAdapter, ChannelError, ChannelResult, ChannelSettings, Flow, Method, Notification,
    NotificationRejected, PayRequest, RecoveryRule, RefundRequest, RefundResult, StatementLine, TradeRef,
    TradeStatus, UnsupportedFlow,
)
from channels.bestpay import transformers as tf
from channels.http import ChannelHttp

FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}


class BestpayAdapter(ChannelAdapter):
    name = "bestpay"
    methods = frozenset({Method.BARCODE})
    flows = frozenset({Flow.PAY, Flow.QUERY, Flow.REFUND, Flow.REVERSE, Flow.NOTIFY, Flow.STATEMENT})
    #: the module docstring's rule: 5 s, every 10 s, reverse after 60 s
    default_recovery = RecoveryRule(first_delay=5.0, interval=10.0, give_up_after=60.0, final_action="reverse",
                                    reverse_retries=5)

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        key = settings.secret.get()
        self._key = key.decode() if isinstance(key, bytes) else key
        if not self._key:
            raise ValueError("bestpay needs its MD5 key as settings.secret")
        self._merchant = settings.mch_id
        self._pwd = str(settings.extra.get("merchant_pwd", ""))
        self._store = str(settings.extra.get("store_id", "0001"))
        self._codes = tf.BestpayCodes.from_extra(settings.extra)
        self._base = settings.base_url.rstrip("/")

    async def _call(self, path: str, form: Mapping[str, str], flow: Flow) -> tf.Answer:
        reply = await self.http.request("POST", f"{self._base}{path}", flow=str(flow), data=urlencode(form),
                                        headers=FORM)
        if reply.status >= 500:
            raise ChannelError(f"bestpay {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        try:
            if reply.status != 200:
                raise ValueError(f"HTTP {reply.status}")
            ans = tf.parse_answer(reply.body)
        except ValueError as e:
            raise ChannelError(f"bestpay {flow}: {e}", retriable=True, kind="garbage") from e
        if not ans.success and ans.error_code in self._codes.system_error_codes:
            raise ChannelError(f"bestpay {flow}: {ans.error_code} {ans.error_msg or ''}".rstrip(),
                               retriable=True, kind="system_error")
        if not ans.success and ans.error_code in self._codes.mac_error_codes:
            raise ChannelError(f"bestpay {flow}: request refused ({ans.error_code})", retriable=False, kind="auth")
        return ans

    def _trade(self, ans: tf.Answer, flow: Flow) -> ChannelResult:
        if ans.success and not tf.trade_sign_ok(ans.result, self._key):
            raise ChannelError(f"bestpay {flow}: answer sign does not verify", retriable=True, kind="bad_signature")
        try:
            return tf.trade_result(ans, self._codes)
        except ValueError as e:
            raise ChannelError(f"bestpay {flow}: {e}", retriable=True, kind="garbage") from e

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method is not Method.BARCODE:
            raise UnsupportedFlow(self.name, f"{Flow.PAY}:{req.method}")
        if not req.auth_code:
            raise ValueError("barcode payment without auth_code")
        form = tf.place_order_form(req, self._merchant, self._key, req.created_at or self._now(), self._store)
        return self._trade(await self._call("/barcode/placeOrder", form, Flow.PAY), Flow.PAY)

    async def query(self, ref: TradeRef) -> ChannelResult:
        form = tf.query_form(ref, self._merchant, self._key)
        return self._trade(await self._call("/query/queryOrder", form, Flow.QUERY), Flow.QUERY)

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        form = tf.reverse_form(ref, self._merchant, self._pwd, self._key, self._now())
        ans = await self._call("/reverse/reverse", form, Flow.REVERSE)
        if not ans.success:
            return tf.trade_result(ans, self._codes)
        if not tf.refund_sign_ok(ans.result, self._key):
            raise ChannelError("bestpay reverse: answer sign does not verify", retriable=True, kind="bad_signature")
        return ChannelResult(TradeStatus.REVERSED, amount=tf.wire_to_fen(ans.result.get("transAmt")))

    async def refund(self, req: RefundRequest) -> RefundResult:
        form = tf.refund_form(req, self._merchant, self._pwd, self._key, self._now())
        ans = await self._call("/refund/commonRefund", form, Flow.REFUND)
        if ans.success and not tf.refund_sign_ok(ans.result, self._key):
            raise ChannelError("bestpay refund: answer sign does not verify", retriable=True, kind="bad_signature")
        return tf.refund_result(ans)

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            form = tf.parse_form(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise NotificationRejected("malformed", f"bestpay: {e}") from e
        is_refund = "REFUNDREQNO" in form
        order = tf.REFUND_NOTIFY_MAC if is_refund else tf.PAY_NOTIFY_MAC
        if not tf.mac_ok(order, form, self._key, form.get("SIGN")):
            raise NotificationRejected("bad_signature", "bestpay: SIGN does not verify")
        if form.get("MERCHANTID") != self._merchant:
            raise NotificationRejected("unknown_merchant", f"bestpay: notification for {form.get('MERCHANTID')}")
        try:
            return tf.refund_notification(form) if is_refund else tf.payment_notification(form)
        except ValueError as e:
            raise NotificationRejected("malformed", f"bestpay: {e}") from e

    def ack(self, ok: bool) -> Ack:
        return Ack(200, b"SUCCESS") if ok else Ack(400, b"FAIL")

    async def statement(self, day: date) -> list[StatementLine]:
        form = tf.statement_form(self._merchant, self._key, day)
        reply = await self.http.request("POST", f"{self._base}/reconciliation/download", flow=str(Flow.STATEMENT),
                                        data=urlencode(form), headers=FORM)
        if reply.status >= 500:
            raise ChannelError(f"bestpay statement: HTTP {reply.status}", retriable=True, kind="http_5xx")
        try:
            text = reply.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ChannelError("bestpay statement: not UTF-8", retriable=True, kind="garbage") from e
        if reply.status != 200 or text.lstrip().startswith("{"):
            # refusals come as the usual JSON answer
            raise ChannelError(f"bestpay statement: refused ({text[:200]})", retriable=False, kind="statement")
        try:
            return tf.parse_statement(text)
        except ValueError as e:
            raise ChannelError(f"bestpay statement: {e}", retriable=True, kind="garbage") from e


ADAPTER = BestpayAdapter
