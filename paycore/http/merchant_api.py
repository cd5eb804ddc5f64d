"""The merchant API of api.md: create, read, long-poll, cancel and refund payments."""
from __future__ import annotations

from aiohttp import web

from paycore.core import validation
from paycore.errors import InvalidRequest, Unauthenticated, Unavailable
from paycore.http.common import AUTH, CONFIG, ENGINE, json_response, merchant_of, merchant_of_deferred, wait_param


async def create_payment(request: web.Request) -> web.Response:
    # the nonce rides the new payment's journal statement (Engine.create_payment): no round trip of its own
    merchant, body, nonce = await merchant_of_deferred(request)
    cfg = request.app[CONFIG]
    try:
        req = validation.create_payment(validation.parse_json_object(body), max_expire_in=cfg.payments.max_expire_in,
                                        allow_http=cfg.webhooks.allow_http, allow_private=cfg.webhooks.allow_private)
        with request.app[AUTH].inflight.slot(merchant.id):   # fair share of the channel calls
            payment, created = await request.app[ENGINE].create_payment(merchant, req, nonce=nonce)
    except (Unauthenticated, Unavailable):
        raise   # a replay, or the database is away: nothing was accepted, and a claim would wait on it again
    except Exception:
        await nonce.claim()   # refused before its write: still recorded, so that a replay is 401, not this answer
        raise
    return json_response(payment.to_api(), 201 if created else 200)


async def get_payment(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    wait = wait_param(request)
    engine = request.app[ENGINE]
    p = await engine.get_payment(merchant, request.match_info["id"])
    if wait:
        p = await engine.wait(merchant, p, wait)
    return json_response(p.to_api())


async def find_payment(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    order_no = request.query.get("merchant_order_no")
    if not order_no or not validation.ORDER_NO_RE.match(order_no):
        raise InvalidRequest("merchant_order_no is required", field="merchant_order_no")
    wait = wait_param(request)
    engine = request.app[ENGINE]
    p = await engine.get_payment_by_order(merchant, order_no)
    if wait:
        p = await engine.wait(merchant, p, wait)
    return json_response(p.to_api())


async def cancel_payment(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    if body.strip() and body.strip() != b"{}":
        validation.parse_json_object(body)  # an empty object is all it takes
    with request.app[AUTH].inflight.slot(merchant.id):
        p = await request.app[ENGINE].cancel(merchant, request.match_info["id"])
    return json_response(p.to_api())


async def create_refund(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    req = validation.create_refund(validation.parse_json_object(body))
    with request.app[AUTH].inflight.slot(merchant.id):
        refund, created = await request.app[ENGINE].create_refund(merchant, request.match_info["id"], req)
    return json_response(refund.to_api(), 201 if created else 200)


async def get_refund(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    r = await request.app[ENGINE].get_refund(merchant, request.match_info["id"])
    return json_response(r.to_api())
