"""The OpenAPI 3.1 document of the whole API (api.md), built as a dict.

The request schemas use the very patterns and limits ``paycore.validation``
enforces (its constants are imported, not copied), so a body the document
calls valid passes validation and one it calls invalid fails it; the unit
tests hold the two together, and schemathesis drives a running paycore with
this document. Two limits are narrower here than on the server, because
JSON Schema cannot say them: ``metadata`` (the server takes any object of
at most 4 KiB; the document describes a portable subset that always fits)
and the cross-field rule that a scanned code's channel must match a
``channel`` named beside it (documented in prose).

``python -m devstack.openapi --write`` (``make openapi``) regenerates ``paycore/http/static/openapi.json``
(served at ``GET /openapi.json``) and the copy at the repository root.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from channels.base import Method
from paycore import __version__
from paycore.core import validation as v
from paycore.merchants.auth import MERCHANT_RE, NONCE_RE
from paycore.core.models import RefundState, Status
from paycore.http import openapi_after
from paycore.metrics import ATTENTION_KINDS
from paycore.outbox import statements

STATIC_FILE = Path(__file__).parent / "static" / "openapi.json"
ROOT_FILE = Path(__file__).resolve().parents[2] / "openapi.json"

#: api.md's error table: HTTP status → the codes that status may carry
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("INVALID_REQUEST",),
    401: ("UNAUTHENTICATED",),
    404: ("NOT_FOUND",),
    409: ("IDEMPOTENCY_CONFLICT", "INVALID_STATE"),
    413: ("PAYLOAD_TOO_LARGE",),
    422: ("UNSUPPORTED_METHOD", "UNKNOWN_AUTH_CODE", "REFUND_EXCEEDS_AMOUNT", "AMOUNT_LIMIT_EXCEEDED"),
    429: ("RATE_LIMITED",),
    502: ("CHANNEL_ERROR",),
    503: ("CHANNEL_UNAVAILABLE", "UNAVAILABLE"),
}
_ERROR_TEXT = {
    400: "The request is malformed; `field` names the offending field (`body` for the body as a whole).",
    401: "Missing or wrong signature headers, a stale timestamp, a replayed nonce, an unknown or disabled "
         "merchant.",
    404: "No such object for this merchant.",
    409: "`IDEMPOTENCY_CONFLICT`: the idempotency key was used with different fields; `INVALID_STATE`: the "
         "payment's status does not allow this.",
    413: "The body is larger than the server's limit (1 MiB by default).",
    422: "Understood but refused: `UNSUPPORTED_METHOD`, `UNKNOWN_AUTH_CODE`, `REFUND_EXCEEDS_AMOUNT`, "
         "`AMOUNT_LIMIT_EXCEEDED`.",
    429: "Over this merchant's rate limit (token bucket); retry after `Retry-After` seconds.",
    502: "The channel answered nonsense (`CHANNEL_ERROR`).",
    503: "`CHANNEL_UNAVAILABLE`: the channel is down (its circuit breaker is open) or not configured; "
         "`UNAVAILABLE`: the database is down and nothing was accepted.",
}

_NO_CTRL = "^[^" + v._CTRL_RE.pattern[1:-1] + "]*$"   # validation._CTRL_RE, inverted
_EXPIRY = r"^[0-9]{2}(0[1-9]|1[0-2])$"              # validation: four digits, YYMM with a real month
_URL = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][^\x00-\x20\x7f-\uffff]*)?$"   # ASCII only
_DT = {"type": "string", "format": "date-time"}
_DT_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR_OR_NULL = {"type": ["string", "null"]}
_FEN = {"type": "integer", "minimum": 1, "maximum": v.MAX_AMOUNT_ABSOLUTE, "format": "int64"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(max_len: int, description: str = "", pattern: str | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": max_len}
    s["pattern"] = pattern or _NO_CTRL
    if description:
        s["description"] = description
    return s


def _pattern(rx) -> str:
    """A Python pattern as JSON Schema should carry it: ``\\Z`` is ``$`` in ECMA-262, and ``\\d``
    is spelled ``[0-9]`` because some engines (Python's re, Rust's regex) read it as any script's digit."""
    return rx.pattern.replace("\\Z", "$").replace("\\d", "[0-9]")


# ---------------------------------------------------------------- request bodies
def _payment_common() -> dict[str, Any]:
    return {
        "merchant_order_no": _text(64, "Unique per merchant: the idempotency key.", _pattern(v.ORDER_NO_RE)),
        "amount": dict(_FEN, description="Minor units (fen), written as a JSON integer (`100`; `100.0` and "
                                         "`1e2` are refused); at most the merchant's maximum (else 422 "
                                         "AMOUNT_LIMIT_EXCEEDED)."),
        "currency": {"type": "string", "const": "CNY"},
        "subject": _text(128),
        "store_id": _text(32),
        "terminal_id": _text(32),
        "notify_url": dict(_text(512, "Merchant webhook: https to a public host (400 INVALID_REQUEST naming "
                                      "`notify_url` otherwise; plain http and private addresses only where the "
                                      "deployment allows them, as dev stacks do). Every delivery connects only to "
                                      "a public address and never follows a redirect."), pattern=_URL),
        "profit_sharing": {"type": "boolean", "description": "Hold the funds for profit sharing (splits) at "
                                                             "channels that need it; a channel without profit "
                                                             "sharing answers 422 UNSUPPORTED_METHOD."},
        "expire_in": {"type": "integer", "minimum": 10, "maximum": 7 * 24 * 3600,
                      "description": "Seconds until an unpaid payment is closed; default 300. The upper bound is "
                                     "the server's `payments.max_expire_in` (a week by default)."},
        "metadata": {
            "type": "object", "maxProperties": 8, "propertyNames": {"maxLength": 32},
            "additionalProperties": {"type": ["string", "integer", "boolean", "null"], "maxLength": 48,
                                     "minimum": -(2 ** 53), "maximum": 2 ** 53},
            "description": "Echoed back. The server accepts any JSON object of at most 4 KiB (compact "
                           "UTF-8); this schema describes a subset that always fits.",
        },
    }


_VARIANTS: dict[str, tuple[tuple[str, ...], str]] = {
    # schema name: (methods, what the variant needs)
    "PaymentCreateScanned": (("barcode", "sonic"),
                             "`auth_code`, the customer's payment code. The channel is derived from the code's "
                             "prefix; a `channel` given beside it must be that channel (else 400, field "
                             "`channel`); a code matching no channel is 422 UNKNOWN_AUTH_CODE."),
    "PaymentCreateNfc": (("nfc",), "`nfc`, the contactless tap (network token, never a card number). Goes "
                                   "through UnionPay; `nfc.wallet` records the phone wallet."),
    "PaymentCreatePayer": (("jsapi",), "`channel` and `payer` ({openid} or {user_id} as the channel needs)."),
    "PaymentCreateWallet": (("wallet",), "`channel` and `payer.user_id`: the bank's own wallet."),
    "PaymentCreateOrder": (("qr", "h5", "app"), "`channel`: the answer carries `qr_code` or `pay_params`."),
}


def _payment_variant(name: str) -> dict[str, Any]:
    methods, needs = _VARIANTS[name]
    props = _payment_common()
    props["method"] = {"type": "string", "enum": list(methods)}
    props["channel"] = {"type": "string", "enum": list(v.CHANNELS)}
    required = ["merchant_order_no", "amount", "currency", "method"]
    if name == "PaymentCreateScanned":
        props["auth_code"] = {"type": "string", "pattern": _pattern(v.AUTH_CODE_RE), "minLength": 10,
                              "maxLength": 32}
        required.append("auth_code")
    elif name == "PaymentCreateNfc":
        props["nfc"] = _ref("Nfc")
        required.append("nfc")
    elif name in ("PaymentCreatePayer", "PaymentCreateWallet"):
        props["payer"] = _ref("Payer" if name == "PaymentCreatePayer" else "WalletPayer")
        required += ["channel", "payer"]
    else:
        required.append("channel")
    return {"type": "object", "title": name, "description": f"method {' | '.join(methods)}: needs {needs}",
            "properties": props, "required": required, "additionalProperties": False}


def _schemas() -> dict[str, Any]:
    s: dict[str, Any] = {}
    for name in _VARIANTS:
        s[name] = _payment_variant(name)
    s["PaymentCreate"] = {
        "description": "POST /v1/payments. Unknown fields are refused (400, `field` names it). The same "
                       "`merchant_order_no` with the same fields returns the existing payment (200); with any "
                       "different field it is 409 IDEMPOTENCY_CONFLICT.",
        "oneOf": [_ref(n) for n in _VARIANTS],
        "discriminator": {"propertyName": "method", "mapping": {
            m: f"#/components/schemas/{n}" for n, (ms, _) in _VARIANTS.items() for m in ms}},
    }
    s["Nfc"] = {
        "type": "object", "additionalProperties": False, "required": ["token", "expiry", "cryptogram"],
        "properties": {
            "token": {"type": "string", "pattern": _pattern(v.TOKEN_RE), "minLength": 13, "maxLength": 19,
                      "description": "Network token (DPAN) with a valid check digit (Luhn); stored and shown "
                                     "masked only."},
            "expiry": {"type": "string", "pattern": _EXPIRY, "description": "YYMM, not in the past"},
            "cryptogram": {"type": "string", "pattern": _pattern(v.CRYPTOGRAM_RE), "minLength": 4,
                           "maxLength": 256, "description": "Never stored or logged."},
            "wallet": {"type": "string", "enum": list(v.NFC_WALLETS)},
            "emv_data": {"type": "string", "pattern": _pattern(v.HEX_RE), "minLength": 2, "maxLength": 4096,
                         "description": "Hex BER-TLV from the chip or phone, whole, holding the 8-byte "
                                        "application cryptogram (tag 9F26)."},
        },
    }
    ident = {"type": "string", "pattern": _pattern(v.ID_RE), "minLength": 1, "maxLength": 64}
    s["Payer"] = {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "properties": {"openid": ident, "user_id": ident}}
    s["WalletPayer"] = {"type": "object", "additionalProperties": False, "required": ["user_id"],
                        "properties": {"openid": ident, "user_id": ident}}
    s["RefundCreate"] = {
        "type": "object", "additionalProperties": False, "required": ["refund_no", "amount"],
        "description": "POST /v1/payments/{id}/refunds. `refund_no` is the idempotency key (same rules as "
                       "payments). Refunds that are not FAILED never sum above the payment's amount (422 "
                       "REFUND_EXCEEDS_AMOUNT).",
        "properties": {"refund_no": _text(64, "Unique per payment: the idempotency key.",
                                          _pattern(v.ORDER_NO_RE)),
                       "amount": _FEN, "reason": _text(256)},
    }
    s["Cancel"] = {"type": "object", "maxProperties": 0, "description": "An empty object (or no body)."}

    # ---- answers
    failure = {"type": ["object", "null"], "required": ["code", "message"],
               "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                              "channel_code": _STR_OR_NULL},
               "additionalProperties": False}
    s["Payment"] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^pay_[0-9a-z]+$"},
            "merchant_id": {"type": "string"},
            "merchant_order_no": {"type": "string"},
            "amount": _FEN,
            "currency": {"type": "string", "const": "CNY"},
            "method": {"type": "string", "enum": [m.value for m in Method]},
            "channel": {"type": "string", "enum": list(v.CHANNELS)},
            "status": {"type": "string", "enum": [x.value for x in Status],
                       "description": "PENDING and PROCESSING are not final; the others are."},
            "channel_trade_no": _STR_OR_NULL,
            "qr_code": dict(_STR_OR_NULL, description="method qr: what the customer scans."),
            "pay_params": {"type": ["object", "null"], "description": "jsapi/h5/app: for the client SDK."},
            "refunded_amount": {"type": "integer", "minimum": 0},
            "fee": {"type": ["integer", "null"], "minimum": 0, "format": "int64",
                    "description": "fen, by the merchant's fee rule when the payment succeeded (0 without one); "
                                   "null until then."},
            "failure": failure,
            "subject": _STR_OR_NULL, "store_id": _STR_OR_NULL, "terminal_id": _STR_OR_NULL,
            "wallet": dict(_STR_OR_NULL, description="nfc/app: the phone wallet that paid."),
            "nfc": {"type": ["object", "null"], "additionalProperties": False,
                    "properties": {"token": {"type": "string", "description": "masked: first 6, last 4"},
                                   "wallet": _STR_OR_NULL}},
            "expires_at": _DT, "created_at": _DT, "updated_at": _DT, "paid_at": _DT_OR_NULL,
            "metadata": {"type": "object"},
        },
    }
    s["Payment"]["required"] = list(s["Payment"]["properties"])
    s["Refund"] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^rfd_[0-9a-z]+$"},
            "payment_id": {"type": "string", "pattern": "^pay_[0-9a-z]+$"},
            "refund_no": {"type": "string"},
            "amount": _FEN,
            "reason": _STR_OR_NULL,
            "status": {"type": "string", "enum": [x.value for x in RefundState]},
            "channel_refund_no": _STR_OR_NULL,
            "failure": failure,
            "created_at": _DT, "updated_at": _DT,
        },
    }
    s["Refund"]["required"] = list(s["Refund"]["properties"])
    all_codes = [c for codes in ERROR_CODES.values() for c in codes]
    s["Error"] = {
        "type": "object", "additionalProperties": False, "required": ["error"],
        "properties": {"error": {
            "type": "object", "additionalProperties": False, "required": ["code", "message"],
            "properties": {"code": {"type": "string", "enum": all_codes},
                           "message": {"type": "string"},
                           "field": {"type": "string"}}}},
    }
    for status, codes in ERROR_CODES.items():
        inner: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["code", "message"],
                                 "properties": {"code": {"type": "string", "enum": list(codes)},
                                                "message": {"type": "string"}, "field": {"type": "string"}}}
        if status == 400:
            inner["required"] = ["code", "message", "field"]
        s[f"Error{status}"] = {"type": "object", "additionalProperties": False, "required": ["error"],
                               "properties": {"error": inner}}
    s["OneCodeError"] = {
        "type": "object", "required": ["error"], "description": "The one-code pages' JSON errors: the API's "
        "codes plus FORBIDDEN (403) and CODE_DISABLED (410).",
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                "field": {"type": "string"}}}}}
    s["Event"] = {
        "type": "object", "required": ["event_id", "type", "seq", "occurred_at", "payment"],
        "description": "A journal event: published to Kafka topic `paycore.payments` keyed by payment id, and "
                       "POSTed to `notify_url` when a payment or refund reaches a final status.",
        "properties": {
            "event_id": {"type": "string", "pattern": "^evt_[0-9a-z]+$"},
            "type": {"type": "string", "enum": ["payment.created", "payment.processing", "payment.succeeded",
                                                "payment.failed", "payment.closed", "payment.reversed",
                                                "refund.created", "refund.succeeded", "refund.failed",
                                                "payment.late_succeeded", "attention.opened",
                                                "attention.resolved"],
                     "description": "`payment.late_succeeded`: money arrived for a payment already CLOSED, "
                                    "FAILED or REVERSED (by default paycore refunds it: a `refund.created` "
                                    "follows). `attention.*` reach Kafka only, not webhooks."},
            "seq": {"type": "integer", "minimum": 1, "description": "Grows by one per payment."},
            "occurred_at": _DT, "payment": _ref("Payment"), "refund": _ref("Refund"),
        },
    }
    s["AttentionItem"] = {
        "type": "object", "description": "A disagreement with a provider waiting for (or resolved by) an operator.",
        "required": ["id", "kind", "merchant_id", "channel", "status", "evidence", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "kind": {"type": "string", "enum": list(ATTENTION_KINDS)},
            "payment_id": {"type": ["string", "null"]}, "refund_id": {"type": ["string", "null"]},
            "merchant_id": {"type": "string"}, "channel": {"type": "string"},
            "status": {"type": "string", "enum": ["OPEN", "RESOLVED"]}, "evidence": {"type": "object"},
            "created_at": _DT, "resolved_at": {"type": ["string", "null"], "format": "date-time"},
            "resolved_by": {"type": ["string", "null"]}, "resolution": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "actions": {"type": "array", "items": {"type": "string"}, "description": "what resolves it (GET one)"},
        },
    }
    money = {"type": "integer", "format": "int64", "description": "fen"}
    day = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    sums = {"count": {"type": "integer", "minimum": 0}, "gross": money, "refunds": money, "fees": money,
            "shares": money, "payouts": money}
    s["Settlement"] = {
        "type": "object", "additionalProperties": False,
        "description": "A merchant's business day (Asia/Shanghai): net = gross - refunds - fees - shares - payouts "
                       "+ adjustments (shares: profit sharing that left the merchant, net of returned shares; "
                       "payouts: transfers that left it, net of returned ones). "
                       "An OPEN day's totals still grow and it has no digest; a CLOSED day's never change.",
        "properties": {
            "merchant_id": {"type": "string"}, "date": day,
            "status": {"type": "string", "enum": ["OPEN", "CLOSED"]},
            **sums, "adjustments": money, "net": money,
            "by_channel": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["channel", "count", "gross", "refunds", "fees", "shares", "payouts", "net"],
                "properties": {"channel": {"type": "string"}, **sums, "net": money}}},
            "file_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$",
                            "description": "SHA-256 (hex) of the statement file; null while the day is OPEN."},
        },
    }
    s["Settlement"]["required"] = list(s["Settlement"]["properties"])
    line = {"kind": {"type": "string", "enum": ["payment", "refund", "adjustment", "split", "payout"],
                     "description": "split: shares made (negative) or a share returned (positive); payout: a "
                                    "payout made (negative) or returned (positive)"},
            "id": {"type": "string", "description": "pay_… or rfd_… (a reversal: the payment's id); split: spl_… "
                                                    "or spr_… (a returned share); payout: po_…"},
            "channel": {"type": "string"}, "amount": money, "fee": money, "net": money, "occurred_at": _DT,
            "original_date": dict(day, description="adjustments: the closed day the event belongs to")}
    s["SettlementLines"] = {
        "type": "object", "additionalProperties": False, "required": ["lines", "next_cursor"],
        "properties": {
            "lines": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": [k for k in line if k != "original_date"], "properties": line}},
            "next_cursor": dict(_STR_OR_NULL, description="the next page's cursor; null on the last page")},
    }
    s["SettlementEvent"] = {
        "type": "object", "additionalProperties": False,
        "required": ["event_id", "type", "seq", "occurred_at", "settlement"],
        "description": "A merchant's business day closed: its final totals and the digest of its statement file.",
        "properties": {"event_id": {"type": "string", "pattern": "^evt_[0-9a-z]+$"},
                       "type": {"type": "string", "const": "settlement.closed"},
                       "seq": {"type": "integer", "const": 1}, "occurred_at": _DT,
                       "settlement": _ref("Settlement")},
    }
    openapi_after.add_schemas(s, text=_text, pattern=_pattern, fen=_FEN, url=_URL, dt=_DT, failure=failure)
    s["Ready"] = {
        "type": "object", "required": ["status", "database"],
        "properties": {"status": {"type": "string", "enum": ["ready", "unavailable"]},
                       "database": {"type": "boolean"},
                       "degraded": {"type": "array", "items": {"type": "string"}},
                       "channels": {"type": "object", "additionalProperties": {
                           "type": "string", "enum": ["closed", "half_open", "open"]}},
                       "relay_leader": {"type": "boolean"}},
    }
    return s


# ------------------------------------------------------------------ operations
def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in statuses:
        r: dict[str, Any] = {"description": _ERROR_TEXT[st], "content": _json(_ref(f"Error{st}"))}
        if st == 429:
            r["headers"] = {"Retry-After": {"required": True, "description": "seconds",
                                            "schema": {"type": "integer", "minimum": 1}}}
        out[str(st)] = r
    return out


_AUTH = [{"merchant": [], "timestamp": [], "nonce": [], "signature": []}]
_COMMON = (401, 413, 429, 503)   # every signed request: auth, body limit, rate limit, database down


def _wait_param() -> dict[str, Any]:
    return {"name": "wait", "in": "query", "required": False,
            "description": "Long-poll: answer as soon as the status is final, or after this many seconds.",
            "schema": {"type": "integer", "minimum": 0, "maximum": 30}}


def _id_param(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "description": f"the {what} id",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


def _links_from_payment() -> dict[str, Any]:
    pid = {"id": "$response.body#/id"}
    return {"GetPayment": {"operationId": "getPayment", "parameters": pid},
            "CancelPayment": {"operationId": "cancelPayment", "parameters": pid},
            "RefundPayment": {"operationId": "createRefund", "parameters": pid}}


_EXAMPLES = {
    "barcode": {"summary": "A WeChat Pay payment code scanned at the POS",
                "value": {"merchant_order_no": "pos-0001", "amount": 1234, "currency": "CNY", "method": "barcode",
                          "auth_code": "134567890123456789", "subject": "2 coffees", "store_id": "s01",
                          "terminal_id": "t07"}},
    "qr": {"summary": "A dynamic Alipay QR for the customer to scan",
           "value": {"merchant_order_no": "qr-0001", "amount": 880, "currency": "CNY", "method": "qr",
                     "channel": "alipay", "expire_in": 120}},
    "nfc": {"summary": "An Apple Pay tap",
            "value": {"merchant_order_no": "tap-0001", "amount": 4500, "currency": "CNY", "method": "nfc",
                      "nfc": {"token": "6212345678901232", "expiry": "3012", "cryptogram": "AAECAwQFBgcICQ==",
                              "wallet": "applepay"}}},
    "jsapi": {"summary": "In-app payment inside WeChat",
              "value": {"merchant_order_no": "mp-0001", "amount": 990, "currency": "CNY", "method": "jsapi",
                        "channel": "wechatpay", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                        "metadata": {"cart": "c-42"}}},
}


def _paths() -> dict[str, Any]:
    payment = {"description": "The payment", "content": _json(_ref("Payment"))}
    p: dict[str, Any] = {}
    p["/v1/payments"] = {
        "post": {
            "operationId": "createPayment", "summary": "Create a payment", "tags": ["payments"],
            "security": _AUTH,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("PaymentCreate"), "examples": _EXAMPLES}}},
            "responses": {
                "201": {"description": "Created", "content": _json(_ref("Payment")), "links": _links_from_payment()},
                "200": {"description": "An identical retry: the existing payment", "content": _json(_ref("Payment"))},
                **_errors(400, 409, 422, 502, *_COMMON)},
        },
        "get": {
            "operationId": "findPayment", "summary": "Find a payment by merchant_order_no", "tags": ["payments"],
            "security": _AUTH,
            "parameters": [{"name": "merchant_order_no", "in": "query", "required": True,
                            "schema": {"type": "string", "pattern": _pattern(v.ORDER_NO_RE)}}, _wait_param()],
            "responses": {"200": payment, **_errors(400, 404, *_COMMON)},
        },
    }
    p["/v1/payments/{id}"] = {
        "get": {
            "operationId": "getPayment", "summary": "Read a payment (optionally long-polling)", "tags": ["payments"],
            "security": _AUTH, "parameters": [_id_param("payment"), _wait_param()],
            "responses": {"200": payment, **_errors(400, 404, *_COMMON)},
        },
    }
    p["/v1/payments/{id}/cancel"] = {
        "post": {
            "operationId": "cancelPayment", "tags": ["payments"],
            "summary": "Close a PENDING payment, reverse a PROCESSING one (or a SUCCEEDED barcode payment while "
                       "its channel allows)",
            "security": _AUTH, "parameters": [_id_param("payment")],
            "requestBody": {"required": False, "content": _json(_ref("Cancel"))},
            "responses": {"200": payment, **_errors(400, 404, 409, 502, *_COMMON)},
        },
    }
    p["/v1/payments/{id}/refunds"] = {
        "post": {
            "operationId": "createRefund", "summary": "Refund a SUCCEEDED payment, fully or partly",
            "tags": ["refunds"], "security": _AUTH, "parameters": [_id_param("payment")],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("RefundCreate"),
                "examples": {"partial": {"value": {"refund_no": "r-0001", "amount": 100, "reason": "one cup"}}}}}},
            "responses": {
                "201": {"description": "Created", "content": _json(_ref("Refund")),
                        "links": {"GetRefund": {"operationId": "getRefund",
                                                "parameters": {"id": "$response.body#/id"}}}},
                "200": {"description": "An identical retry: the existing refund", "content": _json(_ref("Refund"))},
                **_errors(400, 404, 409, 422, 502, *_COMMON)},
        },
    }
    p["/v1/refunds/{id}"] = {
        "get": {
            "operationId": "getRefund", "summary": "Read a refund", "tags": ["refunds"], "security": _AUTH,
            "parameters": [_id_param("refund")],
            "responses": {"200": {"description": "The refund", "content": _json(_ref("Refund"))},
                          **_errors(404, *_COMMON)},
        },
    }
    day_path = {"name": "date", "in": "path", "required": True, "description": "the business day, YYYY-MM-DD",
                "schema": {"type": "string", "format": "date"}}
    p["/v1/settlements"] = {
        "get": {
            "operationId": "getSettlement", "summary": "A business day's settlement: totals, per channel",
            "tags": ["settlements"], "security": _AUTH,
            "parameters": [{"name": "date", "in": "query", "required": True, "description": "YYYY-MM-DD",
                            "schema": {"type": "string", "format": "date"}}],
            "responses": {"200": {"description": "The day", "content": _json(_ref("Settlement"))},
                          **_errors(400, *_COMMON)},
        },
    }
    p["/v1/settlements/{date}/lines"] = {
        "get": {
            "operationId": "listSettlementLines", "summary": "A day's statement lines, a page at a time",
            "tags": ["settlements"], "security": _AUTH,
            "parameters": [day_path, {"name": "cursor", "in": "query", "required": False,
                                      "description": "`next_cursor` of the previous page",
                                      "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,200}$"}}],
            "responses": {"200": {"description": "One page", "content": _json(_ref("SettlementLines"))},
                          **_errors(400, 404, *_COMMON)},
        },
    }
    p["/v1/settlements/{date}.csv"] = {
        "get": {
            "operationId": "getSettlementFile", "summary": "A day's statement file (CSV, UTF-8 with BOM)",
            "description": "Columns: " + ", ".join(f"`{c}`" for c in statements.CSV_COLUMNS) + "; one row per "
                           "line, then a `total` row (the line count in `id`, the sums of amount, fee and net). "
                           "Final once the day is CLOSED: the same bytes as `file_sha256` names.",
            "tags": ["settlements"], "security": _AUTH, "parameters": [day_path],
            "responses": {"200": {
                "description": "The file",
                "headers": {"X-Paycore-File-SHA256": {"description": "SHA-256 (hex) of the body",
                                                      "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                            "X-Paycore-Statement": {"description": "`final` (CLOSED day) or `provisional`",
                                                    "schema": {"type": "string", "enum": ["final", "provisional"]}}},
                "content": {"text/csv": {"schema": {"type": "string"}}}},
                **_errors(400, 404, *_COMMON)},
        },
    }
    openapi_after.add_paths(p, ref=_ref, json=_json, errors=_errors, auth=_AUTH, common=_COMMON, id_param=_id_param)
    opaque_in = {ct: {"schema": {"type": "string"}} for ct in
                 ("application/json", "application/x-www-form-urlencoded", "text/xml", "text/plain")}
    opaque_out = {ct: {"schema": {}} for ct in ("text/plain", "application/json", "text/xml")}
    channel_param = {"name": "channel", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": list(v.CHANNELS)}}
    for path, op_id, what in (("/notify/{channel}", "channelNotification", "payment"),
                              ("/notify/{channel}/refund", "channelRefundNotification", "refund"),
                              ("/notify/{channel}/payout", "channelPayoutNotification", "payout")):
        p[path] = {"post": {
            "operationId": op_id, "tags": ["channels"],
            "summary": f"A channel's asynchronous {what} notification, in the channel's own format",
            "description": "Not signed with the merchant scheme: the body is the provider's own (JSON, form, "
                           "XML), verified as the provider specifies (signature, timestamp, decryption). A "
                           "notification that fails verification, names an unknown order or disagrees with it "
                           "(amount, merchant) changes nothing and is counted in "
                           "`paycore_notifications_rejected_total`. The answer is the provider's own "
                           "acknowledgement; a refusal is the provider's own failure acknowledgement with a 4xx "
                           "status (the sender's fault: never a 5xx, which would page operators as an outage; "
                           "every provider delivers again on a non-2xx or a failure body).",
            "parameters": [channel_param],
            "requestBody": {"required": True, "content": opaque_in},
            "responses": {
                "200": {"description": "Accepted, in the provider's acknowledgement format", "content": opaque_out},
                "400": {"description": "Rejected (provider format): failed verification, unknown order, "
                                       "disagreement, malformed", "content": opaque_out},
                "404": {"description": "Unknown channel, or one that sends no notifications here",
                        "content": _json(_ref("Error404"))},
                "413": {"description": _ERROR_TEXT[413], "content": _json(_ref("Error413"))},
                "503": {"description": _ERROR_TEXT[503], "content": _json(_ref("Error503"))},
            },
        }}
    p.update(_onecode_paths())
    p.update(_ops_paths())
    p["/healthz"] = {"get": {"operationId": "healthz", "summary": "The process is up", "tags": ["operations"],
                             "responses": {"200": {"description": "up", "content": _json({
                                 "type": "object", "required": ["status"],
                                 "properties": {"status": {"const": "ok"}}})}}}}
    p["/readyz"] = {"get": {"operationId": "readyz", "tags": ["operations"],
                            "summary": "Postgres reachable; says what is degraded",
                            "responses": {"200": {"description": "ready", "content": _json(_ref("Ready"))},
                                          "503": {"description": "the database is unreachable",
                                                  "content": _json(_ref("Ready"))}}}}
    p["/metrics"] = {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "tags": ["operations"],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    p["/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document", "tags": ["operations"],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": _json({"type": "object"})}}}}
    return p


def _ops_paths() -> dict[str, Any]:
    """The operators' API (paycore.http.ops_api): the needs-attention queue and exception tools,
    behind the operator bearer token ([security] ops_token), not the merchant signature."""
    item_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    pay_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    sec = [{"operator": []}]
    item = _json(_ref("AttentionItem"))
    errs = {str(st): {"description": d, "content": _json(_ref(f"Error{st}"))} for st, d in (
        (401, "no or wrong operator token, or the operators' API is not configured"),
        (404, "no such item or payment"), (503, _ERROR_TEXT[503]))}
    q = [{"name": n, "in": "query", "required": False, "schema": sch} for n, sch in (
        ("status", {"type": "string", "enum": ["OPEN", "RESOLVED"]}),
        ("kind", {"type": "string", "enum": list(ATTENTION_KINDS)}), ("merchant_id", {"type": "string"}),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        ("before_id", {"type": "integer", "minimum": 1}))]
    return {
        "/ops/attention": {"get": {
            "operationId": "opsListAttention", "tags": ["operations"], "security": sec, "parameters": q,
            "summary": "Needs-attention items, newest first (page with before_id = next_before_id)",
            "responses": {"200": {"description": "a page of items", "content": _json({
                "type": "object", "required": ["items", "next_before_id"],
                "properties": {"items": {"type": "array", "items": _ref("AttentionItem")},
                               "next_before_id": {"type": ["integer", "null"]}}})},
                **{k: v for k, v in errs.items() if k != "404"},
                "400": {"description": _ERROR_TEXT[400], "content": _json(_ref("Error400"))}}}},
        "/ops/attention/{id}": {"get": {
            "operationId": "opsGetAttention", "tags": ["operations"], "security": sec, "parameters": [item_id],
            "summary": "One item with its evidence and the actions that resolve it",
            "responses": {"200": {"description": "the item", "content": item}, **errs}}},
        "/ops/attention/{id}/resolve": {"post": {
            "operationId": "opsResolveAttention", "tags": ["operations"], "security": sec,
            "parameters": [item_id],
            "summary": "Resolve through the engine (journaled as attention.resolved: who, what, why)",
            "requestBody": {"required": True, "content": _json({
                "type": "object", "required": ["action", "actor", "reason"],
                "properties": {"action": {"type": "string", "description": "one of the item's `actions`"},
                               "actor": {"type": "string", "maxLength": 500},
                               "reason": {"type": "string", "maxLength": 500}}})},
            "responses": {"200": {"description": "the resolved item", "content": item}, **errs,
                          "400": {"description": _ERROR_TEXT[400], "content": _json(_ref("Error400"))},
                          "409": {"description": "INVALID_STATE: already resolved, or not an action of this kind",
                                  "content": _json(_ref("Error409"))}}}},
        "/ops/payments/{id}": {"get": {
            "operationId": "opsPaymentDetail", "tags": ["operations"], "security": sec, "parameters": [pay_id],
            "summary": "A payment with its refunds, events, attention items, webhooks and channel calls "
                       "(flow, outcome, answer, code, HTTP status, latency; never the bodies)",
            "responses": {"200": {"description": "the detail", "content": _json({"type": "object"})}, **errs}}},
        "/ops/payments/{id}/requery": {"post": {
            "operationId": "opsRequeryPayment", "tags": ["operations"], "security": sec, "parameters": [pay_id],
            "summary": "Ask the channel now and apply its answer through the engine",
            "responses": {"200": {"description": "the payment after the answer", "content": _json({
                "type": "object", "required": ["payment", "channel_status"],
                "properties": {"payment": _ref("Payment"),
                               "channel_status": {"type": ["string", "null"]}}})}, **errs}}},
    }


def _onecode_paths() -> dict[str, Any]:
    """The one-code cashier (paycore.http.onecode): browser pages, not the merchant API. Unsigned; the
    merchant comes from the code's row, CSRF and form tokens guard the pay call."""
    html = {"text/html": {"schema": {"type": "string"}}}
    code = {"name": "code", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    pid = {"name": "payment_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    token = {"name": "t", "in": "query", "required": True, "description": "the result token the pay call gave",
             "schema": {"type": "string"}}
    err = _json(_ref("OneCodeError"))
    dev_as = {"name": "as", "in": "query", "required": False, "schema": {"type": "string"},
              "description": "development only (onecode.desktop_pay_url set): the app a desktop browser pays as; "
                             "ignored in production"}
    page = {"description": "A page (the keypad, the list of apps that work, or a message)", "content": html}
    limited = {"description": _ERROR_TEXT[429], "content": _json(_ref("Error429")),
               "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}}}
    paid = {"description": "The payment made through the code: what the page hands to the app's bridge, "
                           "and the result page it goes to afterwards",
            "content": _json({"type": "object", "required": ["payment_id", "status", "result", "form"],
                              "properties": {
                                  "payment_id": {"type": "string"}, "status": {"type": "string"},
                                  "channel": {"type": "string"}, "method": {"type": "string"},
                                  "amount": {"type": "integer"},
                                  "result": {"type": "string", "description": "the result page's URL"},
                                  "form": {"type": "string", "description": "a fresh form token for another try"},
                                  "bridge": {"type": "string", "enum": ["wechat", "alipay", "unionpay", "qq",
                                                                        "redirect", "douyin"],
                                             "description": "the app's JS bridge (absent once final)"},
                                  "pay_params": {"type": "object", "description": "what the bridge takes"}}})}
    return {
        "/c/{code}": {"get": {
            "operationId": "oneCodePage", "tags": ["one-code"], "parameters": [code, dev_as],
            "summary": "The merchant's static QR opens this: the keypad, paying through the app that scanned it "
                       "(picked by User-Agent)",
            "responses": {"200": page, "404": dict(page, description="unknown code (a page)"), "429": limited,
                          "503": dict(page, description="the database is down (a page)")}}},
        "/c/{code}/auth/{channel}": {"get": {
            "operationId": "oneCodeAuth", "tags": ["one-code"], "parameters": [
                code, {"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "state", "in": "query", "required": True, "schema": {"type": "string"}}],
            "summary": "Where the app's OAuth (WeChat snsapi_base, Alipay auth_base, Douyin) comes back with its "
                       "one-time code (`code` or `auth_code`): exchanged for the payer id, then back to the page",
            "responses": {"302": {"description": "the payer is known: back to /c/{code}"},
                          "403": dict(page, description="bad state or the provider refused the code (a page)"),
                          "404": dict(page, description="unknown code (a page)"), "429": limited,
                          "503": dict(page, description="the provider or the database is away (a page)")}}},
        "/c/{code}/back/{form}/{mac}": {method: {
            "operationId": op, "tags": ["one-code"], "parameters": [
                code, {"name": "form", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "mac", "in": "path", "required": True, "schema": {"type": "string"}}],
            "summary": "Where JD's H5 cashier sends the customer after paying (the uniorder's callbackUrl, "
                       "GET or POST; what it sends is ignored): on to that form's result page",
            "responses": {"302": {"description": "to the result page, or to /c/{code} if the form made no "
                                                 "payment or the address is not one paycore gave"},
                          "429": limited, "503": {"description": _ERROR_TEXT[503], "content": err}}}
            for method, op in (("get", "oneCodeBack"), ("post", "oneCodeBackPost"))},
        "/c/{code}/pay": {"post": {
            "operationId": "oneCodePay", "tags": ["one-code"], "parameters": [
                code, dev_as,
                {"name": "X-CSRF-Token", "in": "header", "required": True, "schema": {"type": "string"}}],
            "summary": "Pay the amount typed on the keypad (needs the page's session cookie and CSRF token)",
            "requestBody": {"required": True, "content": _json({
                "type": "object", "additionalProperties": False, "required": ["amount", "form"],
                "properties": {"amount": {"type": "string", "description": "yuan, e.g. \"12.34\""},
                               "form": {"type": "string", "description": "the page's signed form token"}}})},
            "responses": {"201": paid, "200": dict(paid, description="the same form again: the same payment"),
                          **{str(s): {"description": d, "content": err} for s, d in (
                              (400, "invalid amount or form"), (403, "FORBIDDEN: CSRF or origin check failed"),
                              (404, "unknown code"), (409, "the same form with another amount"),
                              (410, "CODE_DISABLED"), (413, _ERROR_TEXT[413]),
                              (422, "refused (amount above the limit, method unsupported)"),
                              (502, _ERROR_TEXT[502]), (503, _ERROR_TEXT[503]))},
                          "429": limited}}},
        "/c/{code}/result/{payment_id}": {"get": {
            "operationId": "oneCodeResult", "tags": ["one-code"], "parameters": [code, pid, token],
            "summary": "The result page (it polls the status while the payment is open)",
            "responses": {"200": page, "404": dict(page, description="unknown payment or bad token (a page)"),
                          "429": limited, "503": dict(page, description="the database is down (a page)")}}},
        "/c/{code}/status/{payment_id}": {"get": {
            "operationId": "oneCodeStatus", "tags": ["one-code"], "parameters": [
                code, pid, token, {"name": "wait", "in": "query", "required": False,
                                   "schema": {"type": "integer", "minimum": 0, "maximum": 30}}],
            "summary": "The payment's status for the result page (long-polls with wait)",
            "responses": {"200": {"description": "status", "content": _json({
                "type": "object", "required": ["payment_id", "status", "final"],
                "properties": {"payment_id": {"type": "string"}, "status": {"type": "string"},
                               "final": {"type": "boolean"}, "amount": {"type": "integer"}}})},
                **{str(s): {"description": d, "content": err} for s, d in (
                    (400, "wait out of range"), (404, "unknown payment or bad token"),
                    (503, _ERROR_TEXT[503]))},
                "429": limited}}},
    }


def _security_schemes() -> dict[str, Any]:
    return {
        "operator": {"type": "http", "scheme": "bearer",
                     "description": "The operators' token (`[security] ops_token` / PAYCORE_OPS_TOKEN), "
                                    "compared in constant time; unset, the /ops API answers 401."},
        "merchant": {"type": "apiKey", "in": "header", "name": "X-Paycore-Merchant",
                     "description": f"The merchant id, e.g. `m_demo` (pattern `{MERCHANT_RE.pattern}`)."},
        "timestamp": {"type": "apiKey", "in": "header", "name": "X-Paycore-Timestamp",
                      "description": "Unix seconds; more than 300 s from the server clock is 401."},
        "nonce": {"type": "apiKey", "in": "header", "name": "X-Paycore-Nonce",
                  "description": f"16–64 chars `[A-Za-z0-9]` (pattern `{NONCE_RE.pattern}`); a nonce seen before "
                                 "inside the window is 401, whichever worker saw it."},
        "signature": {"type": "apiKey", "in": "header", "name": "X-Paycore-Signature",
                      "description": "Lowercase hex HMAC-SHA256 with the merchant secret over the canonical "
                                     "string `METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY` (each part "
                                     "followed by a newline, the body last and raw: the exact request bytes, empty "
                                     "for GET). Compared in constant time."},
    }


def _header_params() -> dict[str, Any]:
    """The four authentication headers with their formats (what the security schemes carry)."""
    return {
        "XPaycoreMerchant": {"name": "X-Paycore-Merchant", "in": "header", "required": True,
                             "schema": {"type": "string", "pattern": MERCHANT_RE.pattern}},
        "XPaycoreTimestamp": {"name": "X-Paycore-Timestamp", "in": "header", "required": True,
                              "schema": {"type": "string", "pattern": r"^[0-9]{1,12}$"}},
        "XPaycoreNonce": {"name": "X-Paycore-Nonce", "in": "header", "required": True,
                          "schema": {"type": "string", "pattern": NONCE_RE.pattern}},
        "XPaycoreSignature": {"name": "X-Paycore-Signature", "in": "header", "required": True,
                              "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
    }


def build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "paycore merchant API", "version": __version__,
            "summary": "One signed API in front of twelve payment channels.",
            "description": "JSON bodies, UTF-8. Money is an integer number of minor units (fen); `currency` is "
                           "`CNY`. Times are RFC 3339 UTC. Ids are opaque strings with a type prefix (`pay_`, "
                           "`rfd_`, `evt_`). Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`. "
                           "Every `/v1/...` request is signed (see the security schemes).",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": "payments"}, {"name": "refunds"}, {"name": "settlements"}, {"name": "splits"},
                 {"name": "payouts"}, {"name": "channels"}, {"name": "one-code"},
                 {"name": "operations"}],
        "paths": _paths(),
        "webhooks": {"merchantEvent": {"post": {
            "summary": "A payment or refund reached a final status (to `notify_url`)",
            "description": "Retried with backoff until a 2xx (at least 8 attempts over at least an hour); a "
                           "redirect is not followed.",
            "parameters": [{"name": "X-Paycore-Signature", "in": "header", "required": True,
                            "description": "`t=<unix>,kid=<key id>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`: "
                                           "`kid` names the merchant's current secret (`k1`, `k2`, … one more per "
                                           "rotation). While a rotated-out secret is in its grace period a second "
                                           "`v1` made with it follows. Verify any `v1` against the secret(s) you "
                                           "hold and ignore elements you do not know.",
                            "schema": {"type": "string",
                                       "pattern": "^t=[0-9]+(,kid=[A-Za-z0-9_-]+)?(,v1=[0-9a-f]{64}){1,2}$"}}],
            "requestBody": {"required": True, "content": _json(_ref("Event"))},
            "responses": {"2XX": {"description": "Delivered"}}}},
            "settlementClosed": {"post": {
                "summary": "A business day closed: its final totals (to the merchant's webhook URL)",
                "description": "Signed and retried like merchantEvent.",
                "parameters": [{"name": "X-Paycore-Signature", "in": "header", "required": True,
                                "schema": {"type": "string", "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$"}}],
                "requestBody": {"required": True, "content": _json(_ref("SettlementEvent"))},
                "responses": {"2XX": {"description": "Delivered"}}}}},
        "components": {"schemas": _schemas(), "securitySchemes": _security_schemes(),
                       "parameters": _header_params()},
    }


def render() -> bytes:
    return (json.dumps(build(), indent=1, ensure_ascii=False) + "\n").encode()
