"""Transport and flows shared by WeChat-v3-style adapters.

A subclass sets ``name``, ``methods``, ``flows``, ``default_recovery`` and
``profile`` (its :class:`~channels.wxv3.transformers.V3Profile`) and adds what
only its provider has. Every request is signed (``Authorization``); every
answer below 500 must carry a valid provider signature over
``timestamp\\nnonce\\nbody\\n`` no older than ``max_clock_skew`` (extra,
default 300 s) – including error answers, which these providers sign too.
The one unsigned answer is the bill file itself, checked by its hash instead.

Settings: ``mch_id``/``app_id`` (the service provider's ``sp_mchid``/
``sp_appid`` in partner mode), ``serial_no`` (our certificate serial),
``provider_serial_no`` (the platform certificate/public key id answers must
name; empty accepts any), ``private_key_file``, ``provider_public_key_file``
(PEM key or certificate), ``secret`` (the 32-byte APIv3 key); extra:
``max_clock_skew`` (seconds), ``sub_appid`` (partner mode, optional).

Final provider answers (docs/reliability.md has the table of every channel):
WeChat Pay v3 (wechatpay, douyinpay): SUCCESS, PAYERROR, CLOSED, REVOKED, REFUND and a refund's
SUCCESS/ABNORMAL/CLOSED; not final: NOTPAY, USERPAYING, SYSTEMERROR, ORDER_NOT_EXIST, 5xx, timeouts, a
close's "not found", and a refund query's RESOURCE_NOT_EXISTS/404 (re-send the same out_refund_no).
"""
from __future__ import annotations

import time
from datetime import date
from typing import Any, ClassVar, Mapping
from urllib.parse import urlsplit

import orjson

from channels.base import (
    Ack, ChannelAdapter, ChannelError, ChannelResult, ChannelSettings, Method, Notification,
    NotificationRejected, PayRequest, RefundRequest, RefundResult, RefundStatus, StatementLine, TradeRef,
    UnsupportedFlow,
)
from channels.http import ChannelHttp
from channels.wxv3 import crypto
from channels.wxv3 import transformers as T


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that also works on a plain dict."""
    value = headers.get(name)
    if value is None:
        low = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == low), None)
    return value


class V3Reply:
    __slots__ = ("status", "data", "raw")

    def __init__(self, status: int, data: dict[str, Any], raw: bytes) -> None:
        self.status, self.data, self.raw = status, data, raw


class V3Adapter(ChannelAdapter):
    profile: ClassVar[T.V3Profile]

    def __init__(self, settings: ChannelSettings, http: ChannelHttp) -> None:
        super().__init__(settings, http)
        self._key = crypto.load_private_key(settings.private_key_file)
        self._provider_key = crypto.load_public_key(settings.provider_public_key_file)
        self._aead = crypto.aes_key(settings.secret.get_bytes())
        self._base = settings.base_url.rstrip("/")
        self._skew = float(settings.extra.get("max_clock_skew", 300))
        self._sub_appid = str(settings.extra.get("sub_appid") or "") or None

    # -- transport ----------------------------------------------------------
    def _ids(self, item: TradeRef | RefundRequest | PayRequest) -> T.V3Ids:
        return T.trade_ref_ids(item, self.settings.mch_id, self.settings.app_id, self._sub_appid)

    def sign(self, message: str | bytes) -> str:
        return crypto.rsa_sign(self._key, message)

    def authorization(self, method: str, url: str, body: bytes, timestamp: str, nonce: str) -> str:
        signature = self.sign(crypto.request_message(method, url, timestamp, nonce, body))
        return crypto.build_authorization(self.profile.auth_scheme, self.profile.auth_fields, {
            "mchid": self.settings.mch_id, "nonce_str": nonce, "timestamp": timestamp,
            "serial_no": self.settings.serial_no, "signature": signature})

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when the provider signed ``body`` recently; else the reason (bad_signature, stale)."""
        p = self.profile
        sig, ts, nonce = (header(headers, p.header(h)) for h in ("Signature", "Timestamp", "Nonce"))
        if not (sig and ts and nonce):
            return "bad_signature"
        serial = header(headers, p.header("Serial"))
        if self.settings.provider_serial_no and serial != self.settings.provider_serial_no:
            return "bad_signature"
        if not crypto.rsa_verify(self._provider_key, crypto.response_message(ts, nonce, body), sig):
            return "bad_signature"
        if not crypto.is_fresh(ts, time.time(), self._skew):
            return "stale"
        return None

    async def _call(self, method: str, path: str, *, flow: str, body: dict[str, Any] | None = None,
                    signed_answer: bool = True, extra_headers: Mapping[str, str] | None = None) -> V3Reply:
        raw = orjson.dumps(body) if body is not None else b""
        headers = {
            "Authorization": self.authorization(method, path, raw, str(int(time.time())), crypto.new_nonce()),
            "Accept": "application/json", "User-Agent": "paycore/0.1", **(extra_headers or {}),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        reply = await self.http.request(method, self._base + path, flow=flow, headers=headers,
                                        data=raw if body is not None else None)
        if reply.status >= 500:
            # SYSTEMERROR comes as a 500 with a JSON body; either way the outcome is unknown
            data = _json_or_empty(reply.body)
            T.raise_if_unknown_outcome(data)
            raise ChannelError(f"{self.name} {flow}: HTTP {reply.status}", retriable=True, kind="http_5xx")
        if not signed_answer:
            return V3Reply(reply.status, {}, reply.body)
        reason = self.verify(reply.headers, reply.body)
        if reason is not None:
            raise ChannelError(f"{self.name} {flow}: answer {reason}", retriable=True, kind="bad_signature")
        data: dict[str, Any] = {}
        if reply.body:
            try:
                parsed = orjson.loads(reply.body)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                raise ChannelError(f"{self.name} {flow}: answer is not a JSON object", retriable=True,
                                   kind="garbage")
            data = parsed
        if reply.status == 401:
            # our signature or certificate serial was refused: nothing was done, and retrying will not help
            code, message = T.error_code(data)
            raise ChannelError(f"{self.name} {flow}: {code or 'HTTP 401'} {message}", retriable=False,
                               kind="auth")
        return V3Reply(reply.status, data, reply.body)

    # -- flows ------------------------------------------------------------------
    async def pay(self, req: PayRequest) -> ChannelResult:
        if req.method not in self.methods or self.profile.segment(req.method) is None:
            raise UnsupportedFlow(self.name, f"pay/{req.method}")
        ids = self._ids(req)
        reply = await self._call("POST", T.order_path(self.profile, req.method, ids), flow="pay",
                                 body=T.order_body(req, ids))
        return T.prepay_result(req.method, reply.status, reply.data,
                               lambda prepay_id: self.client_params(req.method, ids, prepay_id))

    def client_params(self, method: Method, ids: T.V3Ids, prepay_id: str) -> dict[str, str]:
        return T.client_pay_params(self.profile, method, ids, prepay_id, str(int(time.time())),
                                   crypto.new_nonce(), self.sign)

    async def query(self, ref: TradeRef) -> ChannelResult:
        reply = await self._call("GET", T.query_path(self.profile, ref.out_trade_no, self._ids(ref)), flow="query")
        return T.query_result(reply.status, reply.data)

    async def close(self, ref: TradeRef) -> ChannelResult:
        ids = self._ids(ref)
        reply = await self._call("POST", T.close_path(self.profile, ref.out_trade_no, ids), flow="close",
                                 body=T.close_body(ids))
        result = T.close_result(reply.status, reply.data)
        return result if result is not None else await self.query(ref)

    async def refund(self, req: RefundRequest) -> RefundResult:
        reply = await self._call("POST", self.profile.refund_path, flow="refund",
                                 body=T.refund_body(req, self._ids(req)))
        return T.refund_result(reply.status, reply.data)

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        reply = await self._call("GET", T.refund_query_path(self.profile, req.out_refund_no, self._ids(req)),
                                 flow="refund_query")
        code = T.error_code(reply.data)[0] if reply.status >= 300 else ""
        if reply.status == 404 or code in T.NOT_FOUND_CODES:
            # not proof: a refund WeChat has not registered yet; re-send the same out_refund_no
            return RefundResult(status=RefundStatus.NOT_FOUND, failure_code=code or "NOT_FOUND")
        return T.refund_result(reply.status, reply.data)

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        envelope, plain = self.open_notification(headers, body)
        return T.notification_from(kind, envelope, plain)

    def open_notification(self, headers: Mapping[str, str], body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the envelope, the decrypted resource) of a notification the provider signed recently;
        NotificationRejected otherwise (bad_signature, stale, undecryptable, malformed)."""
        reason = self.verify(headers, body)
        if reason is not None:
            raise NotificationRejected(reason)
        envelope, res = T.notification_envelope(body)
        try:
            plain = orjson.loads(crypto.aes_gcm_decrypt(self._aead, res.nonce, res.associated_data,
                                                        res.ciphertext))
        except crypto.InvalidTag:
            raise NotificationRejected("undecryptable") from None
        except orjson.JSONDecodeError:
            raise NotificationRejected("malformed", "resource is not JSON") from None
        if not isinstance(plain, dict):
            raise NotificationRejected("malformed", "resource is not an object")
        return envelope, plain

    def ack(self, ok: bool) -> Ack:
        if ok:
            return Ack(200, b'{"code":"SUCCESS"}', "application/json")
        # any non-2xx makes the provider deliver again later; 4xx: the sender's fault, not an outage
        return Ack(400, orjson.dumps({"code": "FAIL", "message": "rejected"}), "application/json")

    async def statement(self, day: date) -> list[StatementLine]:
        # the whole merchant; in service-provider mode the bill covers every sub-merchant
        ids = T.V3Ids(self.settings.mch_id, self.settings.app_id)
        reply = await self._call("GET", T.bill_path(self.profile, day, ids), flow="statement")
        found = T.bill_result(reply.status, reply.data)
        if found is None:
            return []
        url, hash_type, hash_value = found
        # only the path is taken from download_url: the file is fetched from the configured host
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        file = await self._call("GET", path, flow="statement", signed_answer=False)
        if file.status != 200:
            raise ChannelError(f"{self.name} statement download: HTTP {file.status}", retriable=True,
                               kind="rejected")
        if not T.bill_hash_ok(file.raw, hash_type, hash_value):
            raise ChannelError(f"{self.name} statement: {hash_type} mismatch", retriable=True, kind="garbage")
        try:
            text = file.raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ChannelError(f"{self.name} statement is not UTF-8", retriable=True, kind="garbage") from None
        return T.parse_trade_bill(text)


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
