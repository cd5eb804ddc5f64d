"""bankwallet adapter: the bank's own wallet core, JSON over HTTP + HMAC-SHA256.

Follows channels.md §12 and the API the wallet core and paycore share,
written out in :mod:`channels.bankwallet.transformers` (there is no outside
spec: the core is the bank's own). Methods: ``barcode`` (the wallet app's
payment code, prefix ``^88\\d{16}$`` set in the routing config), ``wallet``
(pays from ``payer["user_id"]`` directly, no code) and ``qr`` (the core
answers a ``qr_code`` the customer scans; closed if never paid).

This is the HMAC channel the benchmark drives hardest, so the hot path is
lean: the key bytes, URLs and merchant id are fixed in ``__init__``; a request
is one ``orjson.dumps``, one ``hmac.digest`` and one header dict; an answer is
one ``hmac.digest`` and one ``orjson.loads``.

Choices (the core is ours to define; see transformers for the wire):

* Answers are verified over their headers and body; a 401 is taken as
  "refused, nothing done" even unsigned (the core cannot sign for a caller it
  could not authenticate). A signed 500 ``SYSTEM_ERROR`` is the core's
  "outcome unknown" (``kind="system_error"``); any other 5xx is ``http_5xx``.
* Notifications older or newer than ``extra.replay_window`` (default 300 s)
  are ``stale``.
* Refunds are synchronous in the core (SUCCESS or FAILED at once); a refund
  notification follows.
* Splits and payouts (wire in transformers) are synchronous in the core too:
  SUCCESS / FAILED (with the decline's ``error_code``) / RETURNED are final, a
  PROCESSING answer, a SYSTEM_ERROR or no answer leaves the outcome to recovery's
  query (404 SPLIT_NOT_FOUND / PAYOUT_NOT_FOUND: the same request is sent again;
  the core dedupes on out_split_no / out_payout_no). Receivers and payees are
  wallet accounts (``account``); a final payout is also notified to
  ``/notify/bankwallet/payout``. Nothing is taken back from receivers before a
  refund: the core refunds from the merchant's wallet.

Recovery (our own core, so tighter than the card schemes): the first query
2 s after an unknown outcome, then every 5 s; still unknown 30 s after
creation → reverse (barcode/wallet) or close (qr), reverse retried on error.

Final provider answers (docs/reliability.md has the table of every channel):
SUCCESS, FAILED, CLOSED, REVERSED, a refund's SUCCESS/FAILED; not final: PENDING/PAYING,
500s, ORDER_NOT_FOUND, timeouts, a close's "not found", REFUND_NOT_FOUND (re-send the same refund_no).
"""
from __future__ import annotations

import secrets
import time
from datetime import date
from typing import Any, Mapping

import orjson

from channels.base import (Ack, ChannelAdapter, ChannelError, ChannelResult, ChannelSettings, Flow, Method,
                           Notification, NotificationRejected, PayRequest, RecoveryRule, RefundRequest,
                           RefundResult, RefundStatus, StatementLine, TradeRef, TradeStatus, UnsupportedFlow)
from channels.bankwallet import common
from channels.bankwallet import transformers as tf
from channels.http import ChannelHttp, HttpReply
from channels.transfers import (BindResult, PayoutNotice, PayoutRequest, PayoutResult, ReceiverSpec, ShareRequest,
                                ShareResult)

_OK_ACK = Ack(status=200, body=b'{"result":"OK"}', content_type="application/json")
_FAIL_ACK = Ack(status=400, body=b'{"result":"FAIL"}', content_type="application/json")


class BankWalletAdapter(ChannelAdapter):
    name = "bankwallet"
    methods = frozenset({Method.BARCODE, Method.WALLET, Method.QR})
    flows = frozenset({Flow.PAY, Flow.QUERY, Flow.REVERSE, Flow.CLOSE, Flow.REFUND, Flow.REFUND_QUERY,
                       Flow.NOTIFY, Flow.STATEMENT, Flow.SHARE, Flow.PAYOUT})
    receiver_types = frozenset({"account"})
    payout_types = frozenset({"account"})
    #: our own wallet core: query 2 s after an unknown outcome, every 5 s, give up (reverse) at 30 s
    default_recovery = RecoveryRule(first_delay=2.0, interval=5.0, give_up_after=30.0, final_action="reverse")

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        self._key = settings.secret.get_bytes()
        self._merchant_id = settings.mch_id
        self._window = float(settings.extra.get("replay_window", tf.REPLAY_WINDOW))
        base = settings.base_url.rstrip("/")
        self._urls = {call: base + path for call, path in tf.PATHS.items()}

    # -- transport ----------------------------------------------------------
    async def _post(self, call: str, flow: Flow, payload: Mapping[str, Any]) -> HttpReply:
        body = tf.encode(payload)
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = tf.signed_headers(self._key, ts, nonce, body, "application/json")
        reply = await self.http.request("POST", self._urls[call], flow=flow, headers=headers, data=body)
        if reply.status == 401:
            raise ChannelError(f"bankwallet {flow}: refused: {reply.body[:200]!r}", retriable=False,
                               kind="rejected")
        signed_ok = tf.verify_headers(self._key, reply.headers, reply.body)
        if reply.status >= 500:
            if signed_ok and _error_code(reply.body) == tf.SYSTEM_ERROR:
                raise ChannelError(f"bankwallet {flow}: SYSTEM_ERROR", retriable=True, kind="system_error")
            raise ChannelError(f"bankwallet {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        if not signed_ok:
            raise ChannelError(f"bankwallet {flow}: bad answer signature", retriable=True, kind="bad_signature")
        return reply

    async def _call(self, call: str, flow: Flow, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON of a 200 or 404 answer; other answers raise."""
        reply = await self._post(call, flow, payload)
        try:
            d = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ChannelError(f"bankwallet {flow}: unparseable answer", retriable=True, kind="garbage") from e
        if not isinstance(d, dict):
            raise ChannelError(f"bankwallet {flow}: unexpected answer", retriable=True, kind="garbage")
        if reply.status in (200, 404):
            return d
        raise ChannelError(f"bankwallet {flow}: {reply.status} {d.get('error_code')} {d.get('error_message', '')}",
                           retriable=False, kind="rejected")

    # -- flows --------------------------------------------------------------
    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method not in self.methods and req.method is not Method.SONIC:
            raise UnsupportedFlow(self.name, f"pay/{req.method}")
        return tf.payment_result(await self._call("pay", Flow.PAY, tf.pay_payload(req, self._merchant_id)))

    async def _trade(self, call: str, flow: Flow, ref: TradeRef) -> ChannelResult:
        d = await self._call(call, flow, tf.trade_payload(ref, self._merchant_id))
        if d.get("error_code") == tf.ORDER_NOT_FOUND:
            return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=tf.ORDER_NOT_FOUND)
        return tf.payment_result(d)

    async def query(self, ref: TradeRef) -> ChannelResult:
        return await self._trade("query", Flow.QUERY, ref)

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        return await self._trade("reverse", Flow.REVERSE, ref)

    async def close(self, ref: TradeRef) -> ChannelResult:
        return await self._trade("close", Flow.CLOSE, ref)

    async def refund(self, req: RefundRequest) -> RefundResult:
        d = await self._call("refund", Flow.REFUND, tf.refund_payload(req, self._merchant_id))
        if d.get("error_code") == tf.ORDER_NOT_FOUND:
            return RefundResult(status=RefundStatus.FAILED, failure_code=tf.ORDER_NOT_FOUND)
        return tf.refund_result(d)

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        d = await self._call("refund_query", Flow.REFUND_QUERY, tf.refund_query_payload(req, self._merchant_id))
        if d.get("error_code") == tf.REFUND_NOT_FOUND:
            return RefundResult(status=RefundStatus.NOT_FOUND, failure_code=tf.REFUND_NOT_FOUND)
        return tf.refund_result(d)

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        if not tf.verify_headers(self._key, headers, body):
            raise NotificationRejected("bad_signature")
        if not tf.fresh(headers.get(tf.TS_HEADER), time.time(), self._window):
            raise NotificationRejected("stale")
        return common.decode_notification(kind, body, tf.notification)

    def ack(self, ok: bool) -> Ack:
        return _OK_ACK if ok else _FAIL_ACK

    # -- money after the payment ------------------------------------------------------
    async def add_receiver(self, spec: ReceiverSpec) -> BindResult:
        d = await self._call("receiver_bind", Flow.SHARE, tf.bind_payload(spec, self._merchant_id))
        if d.get("status") == "BOUND":
            return BindResult(ok=True)
        return BindResult(ok=False, failure_code=d.get("error_code") or "NOT_BOUND",
                          failure_message=d.get("error_message") or None)

    async def share(self, req: ShareRequest) -> ShareResult:
        return tf.split_result(await self._call("split", Flow.SHARE, tf.split_payload(req, self._merchant_id)))

    async def query_share(self, req: ShareRequest) -> ShareResult:
        return tf.split_result(await self._call("split_query", Flow.SHARE,
                                                tf.split_query_payload(req, self._merchant_id)))

    async def payout(self, req: PayoutRequest) -> PayoutResult:
        return tf.payout_result(await self._call("payout", Flow.PAYOUT, tf.payout_payload(req, self._merchant_id)))

    async def query_payout(self, req: PayoutRequest) -> PayoutResult:
        return tf.payout_result(await self._call("payout_query", Flow.PAYOUT,
                                                 tf.payout_query_payload(req, self._merchant_id)))

    async def parse_payout_notification(self, headers: Mapping[str, str], body: bytes) -> PayoutNotice:
        if not tf.verify_headers(self._key, headers, body):
            raise NotificationRejected("bad_signature")
        if not tf.fresh(headers.get(tf.TS_HEADER), time.time(), self._window):
            raise NotificationRejected("stale")
        try:
            return tf.payout_notification(orjson.loads(body))
        except ValueError as e:            # orjson.JSONDecodeError is a ValueError
            raise NotificationRejected("malformed", str(e)) from None

    async def statement(self, day: date) -> list[StatementLine]:
        reply = await self._post("statement", Flow.STATEMENT, tf.statement_payload(day, self._merchant_id))
        if reply.status != 200:
            raise ChannelError(f"bankwallet statement: HTTP {reply.status}", retriable=False, kind="rejected")
        try:
            return tf.parse_statement(reply.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ChannelError(f"bankwallet statement: unparseable ({e})", retriable=True, kind="garbage") from e


def _error_code(body: bytes) -> Any:
    try:
        d = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return d.get("error_code") if isinstance(d, dict) else None


ADAPTER = BankWalletAdapter
