"""The merchant API of money after the payment (api.md): receivers, splits, payouts."""
from __future__ import annotations

from aiohttp import web

from paycore.core import validation
from paycore.core.payouts import Payouts
from paycore.core.splits import Splits
from paycore.errors import InvalidRequest
from paycore.http.common import CONFIG, ack_response, json_response, merchant_of, read_body

SPLITS: web.AppKey[Splits] = web.AppKey("splits", Splits)
PAYOUTS: web.AppKey[Payouts] = web.AppKey("payouts", Payouts)


async def create_receiver(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    req = validation.create_receiver(validation.parse_json_object(body))
    receiver, created = await request.app[SPLITS].create_receiver(merchant, req)
    return json_response(receiver.to_api(), 201 if created else 200)


async def create_split(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    req = validation.create_split(validation.parse_json_object(body))
    split, created = await request.app[SPLITS].create_split(merchant, request.match_info["id"], req)
    return json_response(split.to_api(), 201 if created else 200)


async def get_split(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    split = await request.app[SPLITS].get_split(merchant, request.match_info["id"])
    return json_response(split.to_api())


async def create_payout(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    cfg = request.app[CONFIG]
    req = validation.create_payout(validation.parse_json_object(body), allow_http=cfg.webhooks.allow_http,
                                   allow_private=cfg.webhooks.allow_private)
    payout, created = await request.app[PAYOUTS].create(merchant, req)
    return json_response(payout.to_api(), 201 if created else 200)


async def get_payout(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    return json_response((await request.app[PAYOUTS].get(merchant, request.match_info["id"])).to_api())


async def find_payout(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    no = request.query.get("payout_no")
    if not no or not validation.ORDER_NO_RE.match(no):
        raise InvalidRequest("payout_no is required", field="payout_no")
    return json_response((await request.app[PAYOUTS].find(merchant, no)).to_api())


async def payout_notify(request: web.Request) -> web.Response:
    """``POST /notify/{channel}/payout``: the channel's word on a payout, answered in its own format."""
    body = await read_body(request)
    ack = await request.app[PAYOUTS].handle_notification(request.match_info["channel"], request.headers, body)
    return ack_response(ack)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/receivers", create_receiver)
    r.add_post("/v1/payments/{id}/splits", create_split)
    r.add_get("/v1/splits/{id}", get_split)
    r.add_post("/v1/payouts", create_payout)
    r.add_get("/v1/payouts", find_payout)
    r.add_get("/v1/payouts/{id}", get_payout)
    r.add_post("/notify/{channel}/payout", payout_notify)
