"""OpenAPI of money after the payment (api.md): receivers, splits, payouts.

Kept beside :mod:`paycore.http.openapi`, which calls :func:`add_schemas` and
:func:`add_paths`; the shared pieces (errors, security, patterns) come from there.
"""
from __future__ import annotations

from typing import Any, Callable

from paycore.core import validation as v

SPLIT_STATUSES = ["PROCESSING", "SUCCEEDED", "FAILED"]
PAYOUT_STATUSES = ["PROCESSING", "SUCCEEDED", "FAILED", "RETURNED"]
EVENT_TYPES = ["split.created", "split.succeeded", "split.failed", "split.return_created", "split.returned",
               "split.return_failed", "payout.created", "payout.succeeded", "payout.failed", "payout.returned"]


def add_schemas(s: dict[str, Any], *, text: Callable[..., dict[str, Any]], pattern: Callable[[Any], str],
                fen: dict[str, Any], url: str, dt: dict[str, Any], failure: dict[str, Any]) -> None:
    no = lambda what: text(64, f"Unique per {what}: the idempotency key.", pattern(v.ORDER_NO_RE))  # noqa: E731
    account = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": pattern(v.ACCOUNT_RE)}
    name = text(64, "A real name: sent to the channel (encrypted where it requires), kept sealed, shown masked.")
    channel = {"type": "string", "enum": list(v.CHANNELS)}
    s["ReceiverCreate"] = {
        "type": "object", "additionalProperties": False, "required": ["receiver_no", "channel", "type", "account"],
        "description": "POST /v1/receivers: bind a profit-sharing receiver at a channel (wechatpay: a `merchant` "
                       "id with its full name, or an `openid`; alipay: a `user_id` (2088…) or an `account` (logon "
                       "id) with its name; bankwallet: a wallet `account`).",
        "properties": {"receiver_no": no("merchant"), "channel": channel,
                       "type": {"type": "string", "enum": list(v.RECEIVER_TYPES)}, "account": account,
                       "name": name}}
    line = {"type": "object", "additionalProperties": False, "required": ["receiver_id", "amount", "description"],
            "properties": {"receiver_id": {"type": "string", "minLength": 1, "maxLength": 64,
                                           "pattern": pattern(v.ID_RE)},
                           "amount": fen, "description": text(80)}}
    s["SplitCreate"] = {
        "type": "object", "additionalProperties": False, "required": ["split_no", "receivers", "finish"],
        "description": "POST /v1/payments/{id}/splits on a SUCCEEDED payment created with profit_sharing. The "
                       "amounts never sum above what is left to share (the amount less refunds and earlier "
                       "splits; else 422 AMOUNT_LIMIT_EXCEEDED). `finish: true` releases the rest to the "
                       "merchant; with no receivers it only releases.",
        "properties": {"split_no": no("payment"), "finish": {"type": "boolean"},
                       "receivers": {"type": "array", "maxItems": v.MAX_SPLIT_RECEIVERS, "items": line}}}
    s["PayoutCreate"] = {
        "type": "object", "additionalProperties": False,
        "required": ["payout_no", "amount", "currency", "channel", "destination"],
        "description": "POST /v1/payouts: a transfer to a person's wallet or an account, within the per-payout "
                       "and per-day limits (422 AMOUNT_LIMIT_EXCEEDED). Destinations: wechatpay an `openid`; "
                       "alipay a `user_id` or an `account` (logon id, `name` required); bankwallet an `account`.",
        "properties": {
            "payout_no": no("merchant"), "amount": fen, "currency": {"type": "string", "const": "CNY"},
            "channel": channel,
            "destination": {"type": "object", "additionalProperties": False, "required": ["type", "value"],
                            "properties": {"type": {"type": "string", "enum": list(v.DESTINATION_TYPES)},
                                           "value": account, "name": name}},
            "remark": text(32),
            "notify_url": dict(text(512, "Merchant webhook for the payout's final status."), pattern=url)}}
    s["Receiver"] = {
        "type": "object", "additionalProperties": False,
        "properties": {"id": {"type": "string", "pattern": "^rcv_[0-9a-z]+$"}, "receiver_no": {"type": "string"},
                       "channel": channel, "type": {"type": "string", "enum": list(v.RECEIVER_TYPES)},
                       "account": {"type": "string"},
                       "name": {"type": ["string", "null"], "description": "masked"},
                       "status": {"type": "string", "enum": ["ACTIVE"]}}}
    s["Receiver"]["required"] = list(s["Receiver"]["properties"])
    s["Split"] = {
        "type": "object", "additionalProperties": False, "required": ["id", "payment_id", "split_no", "status",
                                                                       "receivers"],
        "properties": {
            "id": {"type": "string", "pattern": "^spl_[0-9a-z]+$"},
            "payment_id": {"type": "string", "pattern": "^pay_[0-9a-z]+$"},
            "split_no": {"type": "string"},
            "status": {"type": "string", "enum": SPLIT_STATUSES,
                       "description": "FAILED when no part moved; per-receiver results in `receivers`."},
            "receivers": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["receiver_id", "amount", "status"],
                "properties": {"receiver_id": {"type": "string"}, "amount": fen,
                               "status": {"type": "string", "enum": SPLIT_STATUSES}, "failure": failure}}}}}
    s["Payout"] = {
        "type": "object", "additionalProperties": False,
        "properties": {"id": {"type": "string", "pattern": "^po_[0-9a-z]+$"}, "payout_no": {"type": "string"},
                       "amount": fen, "channel": channel,
                       "status": {"type": "string", "enum": PAYOUT_STATUSES,
                                  "description": "PROCESSING is not final; RETURNED: credited, then bounced "
                                                 "back to the merchant."},
                       "failure": failure, "created_at": dt, "updated_at": dt}}
    s["Payout"]["required"] = list(s["Payout"]["properties"])
    ev = s["Event"]
    ev["properties"]["type"]["enum"] += EVENT_TYPES
    ev["required"] = ["event_id", "type", "seq", "occurred_at"]
    ev["description"] += (" Split events ride their payment's stream (with `payment` and `split`); payout events "
                          "are keyed by the payout id, `seq` counting per payout, and carry `payout` instead of "
                          "`payment`.")


def add_paths(p: dict[str, Any], *, ref: Callable[[str], dict[str, str]], json: Callable[[Any], dict[str, Any]],
              errors: Callable[..., dict[str, Any]], auth: list[dict[str, Any]], common: tuple[int, ...],
              id_param: Callable[[str], dict[str, Any]]) -> None:
    def created(name: str, what: str) -> dict[str, Any]:
        return {"201": {"description": "Created", "content": json(ref(name))},
                "200": {"description": f"An identical retry: the existing {what}", "content": json(ref(name))}}

    p["/v1/receivers"] = {"post": {
        "operationId": "createReceiver", "summary": "Bind a profit-sharing receiver", "tags": ["splits"],
        "security": auth, "requestBody": {"required": True, "content": json(ref("ReceiverCreate"))},
        "responses": {**created("Receiver", "receiver"), **errors(400, 409, 422, 502, *common)}}}
    p["/v1/payments/{id}/splits"] = {"post": {
        "operationId": "createSplit", "summary": "Share a SUCCEEDED payment with receivers (分账)",
        "tags": ["splits"], "security": auth, "parameters": [id_param("payment")],
        "requestBody": {"required": True, "content": json(ref("SplitCreate"))},
        "responses": {**created("Split", "split"), **errors(400, 404, 409, 422, 502, *common)}}}
    p["/v1/splits/{id}"] = {"get": {
        "operationId": "getSplit", "summary": "Read a split", "tags": ["splits"], "security": auth,
        "parameters": [id_param("split")],
        "responses": {"200": {"description": "The split", "content": json(ref("Split"))},
                      **errors(404, *common)}}}
    p["/v1/payouts"] = {
        "post": {"operationId": "createPayout", "summary": "Pay out to a wallet or account (转账/代付)",
                 "tags": ["payouts"], "security": auth,
                 "requestBody": {"required": True, "content": json(ref("PayoutCreate"))},
                 "responses": {**created("Payout", "payout"), **errors(400, 409, 422, 502, *common)}},
        "get": {"operationId": "findPayout", "summary": "Find a payout by payout_no", "tags": ["payouts"],
                "security": auth,
                "parameters": [{"name": "payout_no", "in": "query", "required": True,
                                "schema": {"type": "string", "pattern": v.ORDER_NO_RE.pattern.replace("\\Z", "$")}}],
                "responses": {"200": {"description": "The payout", "content": json(ref("Payout"))},
                              **errors(400, 404, *common)}}}
    p["/v1/payouts/{id}"] = {"get": {
        "operationId": "getPayout", "summary": "Read a payout", "tags": ["payouts"], "security": auth,
        "parameters": [id_param("payout")],
        "responses": {"200": {"description": "The payout", "content": json(ref("Payout"))},
                      **errors(404, *common)}}}
