"""The operators' API: the needs-attention queue and exception tools.

Behind ``Authorization: Bearer <[security] ops_token>`` (PAYCORE_OPS_TOKEN),
compared in constant time; with no token configured every route answers 401
— an operators' API never runs open. Resolutions go through the engine
(events, outbox, webhooks) exactly as ``paycore attention resolve`` does.
"""
from __future__ import annotations

import hmac

from aiohttp import web

from paycore.core import attention, validation
from paycore.errors import InvalidRequest, NotFound, Unauthenticated
from paycore.http.common import CONFIG, ENGINE, POOL, json_response, read_body


def _authorize(request: web.Request) -> None:
    token = request.app[CONFIG].security.ops_token.get_bytes()
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if not token:
        raise Unauthenticated("the operators' API is disabled (no [security] ops_token configured)")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token):
        raise Unauthenticated("operator credential missing or wrong")


def _int(request: web.Request, name: str, default: int | None, *, lo: int = 1, hi: int = 2**62) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise InvalidRequest(f"{name} must be an integer between {lo} and {hi}", field=name)
    return int(raw)


def _item_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("no such attention item")
    return int(raw)


async def list_attention(request: web.Request) -> web.Response:
    _authorize(request)
    status, kind = request.query.get("status"), request.query.get("kind")
    if status is not None and status not in attention.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(attention.STATUSES)}", field="status")
    if kind is not None and kind not in attention.KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(attention.KINDS)}", field="kind")
    items = await attention.list_items(request.app[POOL], status=status, kind=kind,
                                       merchant_id=request.query.get("merchant_id"),
                                       limit=_int(request, "limit", 50, hi=500) or 50,
                                       before_id=_int(request, "before_id", None))
    return json_response({"items": items, "next_before_id": items[-1]["id"] if items else None})


async def get_attention(request: web.Request) -> web.Response:
    _authorize(request)
    item = await attention.get_item(request.app[POOL], _item_id(request))
    if item is None:
        raise NotFound("no such attention item")
    return json_response(dict(item, actions=attention.ACTIONS.get(item["kind"], ("acknowledge",))))


async def resolve_attention(request: web.Request) -> web.Response:
    _authorize(request)
    item_id = _item_id(request)
    body = validation.parse_json_object(await read_body(request))
    fields = {}
    for name in ("action", "actor", "reason"):
        v = body.get(name)
        if not isinstance(v, str) or not v.strip() or len(v) > 500:
            raise InvalidRequest(f"{name} is required (a non-empty string of at most 500 characters)", field=name)
        fields[name] = v.strip()
    item = await request.app[ENGINE].resolve_attention(item_id, fields["action"], actor=fields["actor"],
                                                       reason=fields["reason"])
    return json_response(item)


async def payment_detail(request: web.Request) -> web.Response:
    _authorize(request)
    detail = await attention.payment_detail(request.app[POOL], request.match_info["id"])
    if detail is None:
        raise NotFound("no such payment")
    return json_response(detail)


async def requery_payment(request: web.Request) -> web.Response:
    _authorize(request)
    p, res = await request.app[ENGINE].requery(request.match_info["id"])
    return json_response({"payment": p.to_api(), "channel_status": str(res.status) if res else None})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/ops/attention", list_attention)
    r.add_get("/ops/attention/{id}", get_attention)
    r.add_post("/ops/attention/{id}/resolve", resolve_attention)
    r.add_get("/ops/payments/{id}", payment_detail)
    r.add_post("/ops/payments/{id}/requery", requery_payment)
