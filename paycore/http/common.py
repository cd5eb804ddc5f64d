"""What every HTTP handler shares: the application's resources (``web.AppKey``s,
set once at start-up by :func:`paycore.http.app.create_app`), JSON answers and
reading a bounded body."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from channels.base import Ack

from paycore import logs
from paycore.config import Config
from paycore.merchants.auth import Merchant
from paycore.core.engine import Engine
from paycore.core.models import dumps
from paycore.errors import InvalidRequest, PayloadTooLarge, PaycoreError
from paycore.merchants.auth import Authenticator, PendingNonce
from paycore.metrics import Metrics
from paycore.outbox.relay import Relay

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
AUTH: web.AppKey[Authenticator] = web.AppKey("auth", Authenticator)
RELAY: web.AppKey[Relay] = web.AppKey("relay", Relay)
POOL: web.AppKey[Any] = web.AppKey("pool", object)

JSON = "application/json"


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON)


def error_response(err: PaycoreError) -> web.Response:
    return web.Response(body=err.body(), status=err.status, content_type=JSON, headers=err.headers())


def ack_response(ack: Ack) -> web.Response:
    """A channel's acknowledgement of a notification, in the provider's own format."""
    ctype, _, charset = ack.content_type.partition(";")
    return web.Response(status=ack.status, body=ack.body, content_type=ctype.strip(),
                        charset=charset.split("=")[-1].strip() if charset else None)


async def read_body(request: web.Request) -> bytes:
    max_body = request.app[CONFIG].server.max_body
    if request.content_length is not None and request.content_length > max_body:
        raise PayloadTooLarge(f"request body exceeds {max_body} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds {max_body} bytes") from None


async def merchant_of(request: web.Request, *, defer_nonce: bool = False) -> tuple[Merchant, bytes]:
    body = await read_body(request)
    merchant = await request.app[AUTH].authenticate(request.method, request.path_qs, request.headers, body,
                                                    defer_nonce=defer_nonce)
    logs.merchant_id.set(merchant.id)
    return merchant, body


async def merchant_of_deferred(request: web.Request) -> tuple[Merchant, bytes, PendingNonce]:
    """As ``merchant_of``, but the request's nonce is left for its write to record (one round
    trip fewer): the caller hands the PendingNonce to the engine, and claims it on any error."""
    merchant, body = await merchant_of(request, defer_nonce=True)
    return merchant, body, PendingNonce(request.app[AUTH], merchant.id, request.headers["X-Paycore-Nonce"])


def wait_param(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        n = int(raw)
    except ValueError:
        raise InvalidRequest("wait must be an integer number of seconds", field="wait") from None
    if not 0 <= n <= request.app[CONFIG].payments.long_poll_max:
        raise InvalidRequest(f"wait must be between 0 and {request.app[CONFIG].payments.long_poll_max}",
                             field="wait")
    return float(n)
