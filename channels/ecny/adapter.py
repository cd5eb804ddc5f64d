"""e-CNY (数字人民币) adapter — an *acquirer profile*, not a PBOC API.

The People's Bank of China publishes no direct merchant API for e-CNY: a
merchant accepts it through an acquiring bank or licensed acquirer, whose
gateway this adapter speaks (channels.md §4). The wire — JSON envelope,
SHA256withRSA request signing in an ``Authorization`` header, signed answers
and notifications, the code table, trade states and the bill format — is
written out in :mod:`channels.ecny.transformers`; it follows the shape of the
acquirer gateways that carry e-CNY codes (Lakala-style ``appid/serial_no/
timestamp/nonce_str/body`` signing) and is one bank's profile: another
acquirer is another profile over the same verbs. Methods: ``barcode`` (the
customer's e-CNY wallet payment code, ``^01\\d{17}$`` in the routing config)
and ``qr`` (the acquirer's ``code_url``, scanned by any e-CNY wallet app).

Choices (the whole profile is unconfirmed by any public spec):

* Signature placement: a header, not a ``sign`` field, so the body is signed
  byte for byte as sent and never re-serialised.
* Answers are verified with the acquirer's public key and must name our
  ``appid`` and the acquirer's serial (``provider_serial_no``) when one is
  configured; a 401 is a refusal (nothing done) even unsigned.
* Notifications older or newer than ``extra.replay_window`` (300 s) are
  ``stale``; both payment and refund notifications are sent.
* Amounts are yuan strings on the wire (converted by integer arithmetic).

Recovery (chosen; e-CNY wallets ask for a PIN above the no-password limit,
so a barcode payment can wait on the customer): first query 3 s after an
unknown outcome, then every 5 s; still unknown 60 s after creation →
revoke (barcode) or close (qr), revoke repeated while the acquirer answers
"system busy".

Final provider answers (docs/reliability.md has the table of every channel):
paid, failed, closed and reversed states, a refund's SUCCESS/FAIL; not final: paying, system
busy, 100001 (order not found), timeouts, a close's "not found", 300004 (refund not found: re-send).
"""
from __future__ import annotations

import secrets
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.bankwallet import common
from channels.base import (Ack, ChannelAdapter, ChannelError, ChannelResult, ChannelSettings, Flow, Method,
                           Notification, NotificationRejected, PayRequest, RecoveryRule, RefundRequest,
                           RefundResult, RefundStatus, StatementLine, TradeRef, UnsupportedFlow)
from channels.ecny import transformers as tf
from channels.http import ChannelHttp

_OK_ACK = Ack(status=200, body='{"code":"SUCCESS","message":"执行成功"}'.encode(), content_type="application/json")
_FAIL_ACK = Ack(status=400, body=b'{"code":"FAIL","message":"rejected"}', content_type="application/json")


def load_private_key(path: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def load_public_key(path: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path}: not an RSA public key")
    return key


class EcnyAdapter(ChannelAdapter):
    name = "ecny"
    methods = frozenset({Method.BARCODE, Method.QR})
    flows = frozenset({Flow.PAY, Flow.QUERY, Flow.REVERSE, Flow.CLOSE, Flow.REFUND, Flow.REFUND_QUERY,
                       Flow.NOTIFY, Flow.STATEMENT})
    #: acquirer profile (chosen): query 3 s after an unknown outcome, every 5 s, revoke/close at 60 s
    default_recovery = RecoveryRule(first_delay=3.0, interval=5.0, give_up_after=60.0, final_action="reverse")

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        self._key = load_private_key(settings.private_key_file)
        self._acquirer_key = load_public_key(settings.provider_public_key_file)
        self._appid, self._serial = settings.app_id, settings.serial_no
        self._acquirer_serial = settings.provider_serial_no
        self._merchant_no = settings.mch_id
        self._window = float(settings.extra.get("replay_window", tf.REPLAY_WINDOW))
        base = settings.base_url.rstrip("/")
        self._urls = {verb: base + path for verb, path in tf.PATHS.items()}

    async def _call(self, verb: str, flow: Flow, req_data: Mapping[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(tf.envelope(req_data, datetime.now(timezone.utc)))
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        sig = tf.rsa_sign(self._key, tf.message(self._appid, self._serial, ts, nonce, body))
        headers = {"Content-Type": "application/json",
                   "Authorization": tf.authorization(self._appid, self._serial, ts, nonce, sig)}
        reply = await self.http.request("POST", self._urls[verb], flow=flow, headers=headers, data=body)
        if reply.status == 401:
            raise ChannelError(f"ecny {flow}: refused: {reply.body[:200]!r}", retriable=False, kind="rejected")
        if reply.status >= 500:
            raise ChannelError(f"ecny {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        h = reply.headers
        if (not tf.verify_answer(self._acquirer_key, h, reply.body) or h.get(tf.ANSWER_HEADERS[0]) != self._appid
                or (self._acquirer_serial and h.get(tf.ANSWER_HEADERS[1]) != self._acquirer_serial)):
            raise ChannelError(f"ecny {flow}: bad answer signature", retriable=True, kind="bad_signature")
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ChannelError(f"ecny {flow}: unparseable answer", retriable=True, kind="garbage") from e
        if not isinstance(answer, dict):
            raise ChannelError(f"ecny {flow}: unexpected answer", retriable=True, kind="garbage")
        return answer

    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method not in self.methods and req.method is not Method.SONIC:
            raise UnsupportedFlow(self.name, f"pay/{req.method}")
        verb, data = tf.pay_data(req, self._merchant_no)
        return tf.pay_result(await self._call(verb, Flow.PAY, data))

    async def query(self, ref: TradeRef) -> ChannelResult:
        return tf.trade_result(await self._call("query", Flow.QUERY, tf.trade_data(ref, self._merchant_no)), "query")

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        answer = await self._call("revoke", Flow.REVERSE, tf.trade_data(ref, self._merchant_no))
        return tf.trade_result(answer, "reverse")

    async def close(self, ref: TradeRef) -> ChannelResult:
        return tf.trade_result(await self._call("close", Flow.CLOSE, tf.trade_data(ref, self._merchant_no)), "close")

    async def refund(self, req: RefundRequest) -> RefundResult:
        return tf.refund_result(await self._call("refund", Flow.REFUND, tf.refund_data(req, self._merchant_no)))

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        answer = await self._call("refund_query", Flow.REFUND_QUERY, tf.refund_query_data(req, self._merchant_no))
        if answer.get("code") == tf.REFUND_NOT_EXIST:   # not proof: re-send the same refund_no
            return RefundResult(status=RefundStatus.NOT_FOUND, failure_code=tf.REFUND_NOT_EXIST)
        return tf.refund_result(answer, "refund_query")

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        auth = tf.parse_authorization(headers.get("Authorization"))
        if auth is None:
            raise NotificationRejected("bad_signature", "no acquirer Authorization header")
        if (self._acquirer_serial and auth["serial_no"] != self._acquirer_serial) or auth["appid"] != self._appid:
            raise NotificationRejected("bad_signature", "unknown acquirer certificate or appid")
        if not tf.verify_authorization(self._acquirer_key, auth, body):
            raise NotificationRejected("bad_signature")
        if not tf.fresh(auth["timestamp"], time.time(), self._window):
            raise NotificationRejected("stale")
        return common.decode_notification(kind, body, tf.notification)

    def ack(self, ok: bool) -> Ack:
        return _OK_ACK if ok else _FAIL_ACK

    async def statement(self, day: date) -> list[StatementLine]:
        answer = await self._call("bill", Flow.STATEMENT, tf.bill_data(day, self._merchant_no))
        if answer.get("code") != tf.OK:
            raise ChannelError(f"ecny statement: {answer.get('code')} {answer.get('msg', '')}", retriable=False,
                               kind="rejected")
        content = (answer.get("resp_data") or {}).get("content")
        try:
            return tf.parse_bill(content if isinstance(content, str) else "")
        except ValueError as e:
            raise ChannelError(f"ecny statement: unparseable ({e})", retriable=True, kind="garbage") from e


ADAPTER = EcnyAdapter
