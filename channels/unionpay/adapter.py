"""UnionPay ACP 5.1.0 adapter (云闪付 B2C/C2B QR, contactless, in-app ``tn``).

Final provider answers (docs/reliability.md has the table of every channel):
origRespCode 00 and declines, a refund's origRespCode 00 or refusal; not final: 03/04/05,
respCode 34 (no such transaction: of a refund, re-send the same orderId), timeouts, a close that asks to
retry or finds nothing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import time
from datetime import date, datetime, timezone
from typing import Any, ClassVar, Mapping

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

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
)
from channels.http import ChannelHttp
from channels.unionpay import transformers as t

log = logging.getLogger("paycore.channels.unionpay")


def load_private_key(path: str) -> RSAPrivateKey:
    with open(path, "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def load_public_key(path: str) -> RSAPublicKey:
    with open(path, "rb") as f:
        key = load_pem_public_key(f.read())
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"{path}: not an RSA public key")
    return key


class UnionPayAdapter(ChannelAdapter):
    """UnionPay ACP 5.1.0, following 《全渠道平台接入接口规范》 (back-end
    transactions, query, file transfer), the 二维码支付 (B2C ``qrNo``, C2B
    ``qrCode``) and 手机控件支付 (``tn``) product specs and the ACP SDK's
    signMethod 01; field names checked against public ACP SDK constants.

    Transport: form POSTs to ``backTransReq.do`` (consume 01/06 barcode, 01/07
    C2B QR, 01/01 contactless, refund 04, 撤销 31), ``queryTrans.do`` (00) and
    ``appTransReq.do`` (01/01 → ``tn``); the daily file (76/01, fileType 00)
    from ``extra.file_trans_url`` (default ``base_url + "/"``; production
    ``https://filedownload.95516.com/``).

    Choices where the facts are unconfirmed or simplified (all visible in
    :mod:`channels.unionpay.transformers`):

    * orderId: ``pay_…``/``rfd_…`` lose their underscore (``pay0123…``) and get
      it back in notifications, queries and statements.
    * txnTime of a payment is ``PayRequest.created_at`` in Beijing time, and a
      query names it again from ``TradeRef.created_at`` (ACP identifies an
      order by merId + orderId + txnTime), so the engine must hand the same
      ``created_at`` to both. A refund has no creation time of its own in
      :class:`RefundRequest`, so its txnTime is ``payment_created_at`` (else
      now): a refund query can then name it again. A refund without the
      payment's queryId (``channel_trade_no``) learns it by a query first.
    * Sync answer codes: 00 accepted; 05 ("accepted, query later": the
      customer is still confirming) is PROCESSING for barcode/nfc and PENDING
      for qr/app, so that customers typing a password do not count as channel
      faults; 03/04 and 12 (duplicate) are unknown → ChannelError(retriable,
      system_error); 10/11/13 (format, signature, missing field: nothing
      happened) → ChannelError(retriable=False); 10/13 are the request's content
      (the caller's error: ``caller=True`` naming the field the message
      brackets), 11 our signature (kind "rejected", a channel fault); anything
      else is a decline, FAILED with respCode/respMsg. A refund's 00 means
      *accepted* → PROCESSING; its notification or a query settles it.
    * Answers and notifications are verified with the provider public key
      file, which stands in for the ``signPubKeyCert`` UnionPay attaches in
      5.1.0 (no certificate chain is validated); their ``certId`` must be
      ``provider_serial_no``. Ours is ``serial_no``.
    * Contactless (01/01): ``accNo`` = the token (DPAN) and ``customerInfo``'s
      ``encryptedInfo`` = ``expired=YYMM``, both encrypted RSA PKCS#1 v1.5
      (ACP's RSA/ECB/PKCS1Padding) under the provider public key, standing in
      for UnionPay's encryption certificate, with ``encryptCertId`` =
      ``extra.encrypt_cert_id`` or ``provider_serial_no``. ``ICTransData``
      carries the EMV TLV from the phone with the cryptogram as tag 9F26
      (in clear, as EMV field 55 travels). Nothing here logs them.
    * The wallet that paid is written to ``reqReserved={wallet=…}``, which
      UnionPay echoes in answers and notifications; a refund's reqReserved
      names the payment (``{payment=pay_…}``), since a refund notification
      otherwise names only ``origQryId``.
    * backUrl: a payment carries ``PayRequest.notify_url``, a refund
      ``RefundRequest.notify_url``; both notifications are told apart by the
      signed txnType (01/04), whichever URL they arrive on. A 撤销 carries
      ``extra.cancel_back_url`` if set, else none (paycore needs no cancel
      notification; its answer is final).
    * reverse and close are both 撤销 (txnType 31; ACP has no close) with a
      derived orderId (``C`` + orderId) so a repeat is a duplicate; when the
      queryId is unknown a query learns it first (NOT_FOUND/FAILED are
      returned as they are; no queryId yet → ``retry=True``, the order lapses
      at ``payTimeout``). close() cancels only what a query finds unpaid. ACP's query of a cancelled consume reports the
      consume itself, so REVERSED/CLOSED come only from reverse()/close().
    * ``sub_mch_id`` is not sent: this is direct merchant access
      (accessType 0, merId = ``mch_id``).
    * Statement: see :data:`channels.unionpay.transformers.FILE_COLUMNS`;
      respCode 98 (no file for that day) is an empty statement.

    云闪付's web view pays a ``tn`` with its JS SDK (upsdk), which works only after the
    page has called ``upsdk.config`` with a configuration signed over the open
    platform's frontToken (:meth:`web_sdk_config`). The open platform's appId and
    secret are ``app_id`` and ``app_secret`` (not ACP's merId and certificate); its
    host is ``extra.open_api_url`` (default ``https://open.95516.com/open/access/1.0``).
    The frontToken is fetched once and kept until shortly before its ``expiresIn``
    (per worker process); a refusal (resp other than 00: wrong appId or secret) raises
    ChannelError(retriable=False), a 5xx or an unreadable answer a retriable one;
    either way nothing is cached and the next page asks again.
    """

    name: ClassVar[str] = "unionpay"
    methods: ClassVar[frozenset[Method]] = frozenset({Method.BARCODE, Method.QR, Method.NFC, Method.APP})
    flows: ClassVar[frozenset[Flow]] = frozenset({
        Flow.PAY, Flow.QUERY, Flow.REFUND, Flow.REFUND_QUERY, Flow.REVERSE, Flow.CLOSE, Flow.NOTIFY,
        Flow.STATEMENT,
    })
    #: ACP's guidance for a consume whose answer is 03/04/05 or missing: query
    #: at increasing intervals (first after about 5 s, then about every 10 s)
    #: and, still unknown after about 60 s, cancel it (撤销, txnType 31).
    default_recovery: ClassVar[RecoveryRule] = RecoveryRule(
        first_delay=5.0, interval=10.0, give_up_after=60.0, final_action="reverse")
    web_sdk: ClassVar[bool] = True
    #: the frontToken is renewed this long before UnionPay says it expires, so that a
    #: page's configuration never carries a token that dies while the customer types
    FRONT_TOKEN_MARGIN: ClassVar[float] = 300.0
    #: the wallet this channel is (Apple/Huawei/Samsung Pay subclasses), None for plain UnionPay
    wallet: ClassVar[str | None] = None
    #: ACP seType marking an in-app payment for a phone maker's wallet (Huawei 04, Samsung 02)
    se_type: ClassVar[str | None] = None

    def __init_subclass__(cls, *, wallet: str | None = None, se_type: str | None = None, **kw: object) -> None:
        """``class HuaweiPayAdapter(UnionPayAdapter, wallet="huaweipay", se_type="04")``:
        a wallet channel is UnionPay under the wallet's name, taking nfc and app."""
        super().__init_subclass__(**kw)
        if wallet:
            cls.name, cls.wallet, cls.se_type = wallet, wallet, se_type
            cls.methods = frozenset({Method.NFC, Method.APP})

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        self._key = load_private_key(settings.private_key_file)
        self._provider_key = load_public_key(settings.provider_public_key_file)
        extra = settings.extra
        self._mer = t.Merchant(mer_id=settings.mch_id, cert_id=settings.serial_no,
                               encrypt_cert_id=str(extra.get("encrypt_cert_id") or settings.provider_serial_no))
        base = settings.base_url.rstrip("/")
        self._urls = {
            t.BACK_TRANS_PATH: base + t.BACK_TRANS_PATH, t.QUERY_PATH: base + t.QUERY_PATH,
            t.APP_TRANS_PATH: base + t.APP_TRANS_PATH,
            t.FILE_TRANS_PATH: str(extra.get("file_trans_url") or base + t.FILE_TRANS_PATH),
        }
        self._app_biz_type = str(extra.get("app_biz_type") or t.APP_BIZ_TYPE)
        self._cancel_back_url = str(extra.get("cancel_back_url") or "")
        self._open_api_url = str(extra.get("open_api_url") or t.OPEN_API_URL).rstrip("/")
        self._front_token: tuple[str, float] | None = None   # (token, monotonic time to renew it)
        self._front_token_lock = asyncio.Lock()

    # -- 云闪付's JS SDK on the one-code page --------------------------------------
    def web_sdk_ready(self) -> bool:
        return bool(self.settings.app_id and self.settings.app_secret)

    async def _current_front_token(self) -> str:
        async with self._front_token_lock:     # concurrent pages wait for one fetch
            cached = self._front_token
            if cached is not None and time.monotonic() < cached[1]:
                return cached[0]
            body = t.front_token_request(self.settings.app_id, self.settings.app_secret.get_bytes().decode(),
                                         secrets.token_hex(8), int(time.time()))
            reply = await self.http.request("POST", self._open_api_url + t.FRONT_TOKEN_PATH, flow="web_sdk",
                                            data=json.dumps(body).encode(),
                                            headers={"Content-Type": "application/json"})
            token, expires_in = t.front_token_result(reply.status, reply.body)
            # a short-lived token is renewed at half its life rather than never being cached
            keep = max(expires_in - self.FRONT_TOKEN_MARGIN, expires_in / 2)
            self._front_token = (token, time.monotonic() + keep)
            log.debug("%s frontToken fetched (expiresIn=%s)", self.name, expires_in)
            return token

    async def web_sdk_config(self, page_url: str) -> dict[str, Any]:
        token = await self._current_front_token()
        return t.upsdk_config(self.settings.app_id, token, page_url, secrets.token_hex(8), int(time.time()))

    # -- transport -----------------------------------------------------------
    async def _call(self, path: str, fields: t.Fields, flow: Flow) -> t.Fields:
        body = t.encode_form(t.signed(fields, self._key))
        log.debug("%s %s txnType=%s orderId=%s", self.name, flow, fields.get("txnType"), fields.get("orderId"))
        reply = await self.http.request(
            "POST", self._urls[path], flow=str(flow), data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"})
        if reply.status >= 500:
            raise ChannelError(f"{self.name} {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        try:
            if reply.status != 200:
                raise ValueError(f"HTTP {reply.status}")
            answer = t.parse_answer(reply.body.decode("utf-8"))
        except ValueError as e:
            raise ChannelError(f"{self.name} {flow}: unparseable answer ({e})", retriable=True,
                               kind="garbage") from None
        if answer.get("certId") != self.settings.provider_serial_no or not t.verify(answer, self._provider_key):
            raise ChannelError(f"{self.name} {flow}: answer signature does not verify", retriable=True,
                               kind="bad_signature")
        log.debug("%s %s orderId=%s respCode=%s", self.name, flow, answer.get("orderId"), answer.get("respCode"))
        return answer

    @staticmethod
    def _invalid(e: ValueError) -> ChannelError:
        # the request cannot be put into ACP's format (chip data that is no TLV …): nothing was
        # sent, and what the caller gave is at fault, not the channel
        return ChannelError(f"invalid request: {e}", retriable=False, kind="invalid_request", caller=True,
                            field="nfc.emv_data" if "TLV" in str(e) else None)

    # -- payments --------------------------------------------------------------
    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method not in self.methods:
            raise ChannelError(f"{self.name} does not take {req.method} payments", retriable=False,
                               kind="invalid_request")
        try:
            path, fields = t.pay_request(req, self._mer, wallet=self.wallet, se_type=self.se_type,
                                         app_biz_type=self._app_biz_type, encrypt_key=self._provider_key)
        except ValueError as e:
            raise self._invalid(e) from None
        answer = await self._call(path, fields, Flow.PAY)
        wallet = (req.nfc.wallet if req.nfc else None) or self.wallet
        return t.pay_result(answer, req.method, wallet=wallet, se_type=self.se_type)

    async def query(self, ref: TradeRef) -> ChannelResult:
        at = ref.created_at or datetime.now(timezone.utc)
        answer = await self._call(t.QUERY_PATH, t.query_request(self._mer, t.to_order_id(ref.out_trade_no), at),
                                  Flow.QUERY)
        return t.query_result(answer, ref.method, wallet=self.wallet)

    async def _cancel(self, ref: TradeRef, done: TradeStatus, flow: Flow) -> ChannelResult:
        qry_id = ref.channel_trade_no
        if not qry_id:
            found = await self.query(ref)
            if found.status in (TradeStatus.NOT_FOUND, TradeStatus.FAILED):
                return found                       # nothing was taken: nothing to cancel
            if not found.channel_trade_no:
                # UnionPay has no queryId to cancel by yet (an unpaid C2B/tn order):
                # ask to be called again; the order lapses at its payTimeout anyway
                return dataclasses.replace(found, retry=True)
            qry_id = found.channel_trade_no
        fields = t.cancel_request(self._mer, t.to_order_id(ref.out_trade_no), qry_id, ref.amount,
                                  datetime.now(timezone.utc), self._cancel_back_url)
        result = t.cancel_result(await self._call(t.BACK_TRANS_PATH, fields, flow), done)
        if result is not None:
            return result
        # refused (e.g. 35: the consume failed or was refunded): say what it really is
        return await self.query(ref)

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        return await self._cancel(ref, TradeStatus.REVERSED, Flow.REVERSE)

    async def close(self, ref: TradeRef) -> ChannelResult:
        found = await self.query(ref)
        if found.status not in (TradeStatus.PENDING, TradeStatus.PROCESSING):
            return found
        if found.channel_trade_no and not ref.channel_trade_no:
            ref = TradeRef(ref.out_trade_no, ref.amount, ref.method, found.channel_trade_no, ref.sub_mch_id,
                           ref.created_at)
        return await self._cancel(ref, TradeStatus.CLOSED, Flow.CLOSE)

    # -- refunds -------------------------------------------------------------
    def _refund_time(self, req: RefundRequest) -> datetime:
        return req.payment_created_at or datetime.now(timezone.utc)

    async def refund(self, req: RefundRequest) -> RefundResult:
        if not req.channel_trade_no:
            # ACP refunds by origQryId only: learn the payment's queryId first
            paid = await self.query(TradeRef(req.out_trade_no, req.total_amount, Method.BARCODE,
                                             created_at=req.payment_created_at))
            if paid.channel_trade_no:
                req = dataclasses.replace(req, channel_trade_no=paid.channel_trade_no)
        try:
            fields = t.refund_request(req, self._mer, self._refund_time(req))
        except ValueError as e:
            raise self._invalid(e) from None
        return t.refund_result(await self._call(t.BACK_TRANS_PATH, fields, Flow.REFUND))

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        fields = t.query_request(self._mer, t.to_order_id(req.out_refund_no), self._refund_time(req))
        return t.refund_query_result(await self._call(t.QUERY_PATH, fields, Flow.REFUND_QUERY))

    # -- notifications ---------------------------------------------------------
    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            fields = t.parse_form(body)
        except (ValueError, UnicodeDecodeError):
            raise NotificationRejected("malformed", "not a form body") from None
        if fields.get("certId") != self.settings.provider_serial_no or not t.verify(fields, self._provider_key):
            raise NotificationRejected("bad_signature")
        if fields.get("merId") != self.settings.mch_id:
            raise NotificationRejected("wrong_merchant", f"merId {fields.get('merId')!r}")
        try:
            note = t.notification(fields, wallet=self.wallet)
        except (ValueError, KeyError) as e:
            raise NotificationRejected("malformed", str(e)) from None
        log.debug("%s notification txnType=%s orderId=%s respCode=%s", self.name, fields.get("txnType"),
                  fields.get("orderId"), fields.get("respCode"))
        return note

    def ack(self, ok: bool) -> Ack:
        # UnionPay retries a notification until it gets HTTP 200; the body is informative
        return Ack(200, b"ok") if ok else Ack(400, b"fail")

    # -- statement -------------------------------------------------------------
    async def statement(self, day: date) -> list[StatementLine]:
        fields = t.file_request(self._mer, day, datetime.now(timezone.utc))
        answer = await self._call(t.FILE_TRANS_PATH, fields, Flow.STATEMENT)
        code = answer.get("respCode", "")
        if code == t.RESP_FILE_NOT_FOUND:
            return []
        if code != t.RESP_OK:
            t.check_protocol("statement", answer)   # raises for refused/unknown answers
            raise ChannelError(f"{self.name} statement: respCode {code} ({answer.get('respMsg', '')})",
                               retriable=True, kind="system_error")
        try:
            return t.parse_statement(answer.get("fileContent", ""), self._mer.mer_id, day)
        except ValueError as e:
            raise ChannelError(f"{self.name} statement: unreadable file ({e})", retriable=True,
                               kind="garbage") from None


ADAPTER = UnionPayAdapter
