"""The merchant API (api.md), channel notification endpoints and operations.

Shared resources are ``web.AppKey``s created and torn down in ``cleanup_ctx``;
nothing is global and nothing changes after start-up. Every error leaves as
``{"error": {"code", "message", "field"?}}``; an unexpected exception is
logged (once, without request data) and answered with a generic 500 body.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from channels.base import ChannelAdapter
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from paycore import db, logs, metrics
from paycore.auth import Authenticator, Merchant, Merchants, NonceStore, RateLimiter, SecretBox
from paycore.breaker import Breaker
from paycore.config import Config
from paycore.engine import Engine
from paycore.errors import InvalidRequest, PayloadTooLarge, PaycoreError
from paycore.journal import Journal
from paycore.models import dumps
from paycore.recovery import Recovery
from paycore.relay import Relay
from paycore.routing import Router
from paycore import validation

log = logging.getLogger("paycore.api")
access_log = logging.getLogger("paycore.access")
OPENAPI_FILE = Path(__file__).parent / "static" / "openapi.json"

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
AUTH: web.AppKey[Authenticator] = web.AppKey("auth", Authenticator)
RELAY: web.AppKey[Relay] = web.AppKey("relay", Relay)
POOL: web.AppKey[Any] = web.AppKey("pool", object)

_JSON = "application/json"


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=_JSON)


def error_response(err: PaycoreError) -> web.Response:
    return web.Response(body=err.body(), status=err.status, content_type=_JSON, headers=err.headers())


_HTTP_CODES = {400: "INVALID_REQUEST", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
               413: "PAYLOAD_TOO_LARGE", 415: "INVALID_REQUEST"}


@web.middleware
async def errors_and_metrics(request: web.Request, handler):
    t0 = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    # log context for everything this request logs (reset here: a keep-alive connection reuses its task)
    rid = logs.new_request_id(request.headers.get("X-Request-Id"))
    logs.request_id.set(rid)
    logs.merchant_id.set(None)
    pid = request.match_info.get("id")
    logs.payment_id.set(pid if pid and pid.startswith("pay_") else None)
    try:
        resp = await handler(request)
        status = resp.status
        if not resp.prepared:
            resp.headers["X-Request-Id"] = rid
        return resp
    except PaycoreError as e:
        status = e.status
        return error_response(e)
    except web.HTTPException as e:
        status = e.status
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "INVALID_REQUEST" if e.status < 500 else "INTERNAL")
        body = orjson.dumps({"error": {"code": code, "message": e.reason or "error"}})
        headers = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
        return web.Response(body=body, status=e.status, content_type=_JSON, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, route, rid)
        status = 500
        return web.Response(body=orjson.dumps({"error": {"code": "INTERNAL", "message":
                                                          f"internal error (reference {rid})"}}),
                            status=500, content_type=_JSON)
    finally:
        metrics.HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
        metrics.HTTP_LATENCY.labels(route).observe(time.perf_counter() - t0)
        if request.app[CONFIG].server.access_log:
            access_log.info("%s %s %d %.1fms", request.method, request.path, status, (time.perf_counter() - t0) * 1e3)


async def read_body(request: web.Request) -> bytes:
    max_body = request.app[CONFIG].server.max_body
    if request.content_length is not None and request.content_length > max_body:
        raise PayloadTooLarge(f"request body exceeds {max_body} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds {max_body} bytes") from None


async def merchant_of(request: web.Request) -> tuple[Merchant, bytes]:
    body = await read_body(request)
    merchant = await request.app[AUTH].authenticate(request.method, request.path_qs, request.headers, body)
    logs.merchant_id.set(merchant.id)
    return merchant, body


def _wait_param(request: web.Request) -> float:
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


# ------------------------------------------------------------------ handlers
async def create_payment(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    cfg = request.app[CONFIG]
    req = validation.create_payment(validation.parse_json_object(body), max_expire_in=cfg.payments.max_expire_in)
    payment, created = await request.app[ENGINE].create_payment(merchant, req)
    return json_response(payment.to_api(), 201 if created else 200)


async def get_payment(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    wait = _wait_param(request)
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
    wait = _wait_param(request)
    engine = request.app[ENGINE]
    p = await engine.get_payment_by_order(merchant, order_no)
    if wait:
        p = await engine.wait(merchant, p, wait)
    return json_response(p.to_api())


async def cancel_payment(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    if body.strip() and body.strip() != b"{}":
        validation.parse_json_object(body)  # an empty object is all it takes
    p = await request.app[ENGINE].cancel(merchant, request.match_info["id"])
    return json_response(p.to_api())


async def create_refund(request: web.Request) -> web.Response:
    merchant, body = await merchant_of(request)
    req = validation.create_refund(validation.parse_json_object(body))
    refund, created = await request.app[ENGINE].create_refund(merchant, request.match_info["id"], req)
    return json_response(refund.to_api(), 201 if created else 200)


async def get_refund(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    r = await request.app[ENGINE].get_refund(merchant, request.match_info["id"])
    return json_response(r.to_api())


async def notify(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    kind = "refund" if request.path.endswith("/refund") else "payment"
    body = await read_body(request)
    ack = await request.app[ENGINE].handle_notification(channel, kind, request.headers, body)
    ctype, _, charset = ack.content_type.partition(";")
    return web.Response(status=ack.status, body=ack.body, content_type=ctype.strip(),
                        charset=charset.split("=")[-1].strip() if charset else None)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    degraded: list[str] = []
    try:
        await asyncio.wait_for(request.app[POOL].fetchval("select 1"), 2.0)
        db_ok = True
    except Exception:
        db_ok = False
        degraded.append("database")
    engine = request.app[ENGINE]
    breakers = {name: ("closed", "half_open", "open")[b.state] for name, b in engine.breakers.items()}
    degraded += [f"channel:{n}" for n, s in breakers.items() if s == "open"]
    relay = request.app.get(RELAY)
    body = {"status": "ready" if db_ok else "unavailable", "database": db_ok, "degraded": degraded,
            "channels": breakers, "relay_leader": bool(relay and relay.is_leader)}
    return json_response(body, 200 if db_ok else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    data, ctype = metrics.render()
    return web.Response(body=data, headers={"Content-Type": ctype})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_FILE.read_bytes(), content_type=_JSON)


# ------------------------------------------------------------------ wiring
def build_adapters(cfg: Config, session: aiohttp.ClientSession) -> dict[str, ChannelAdapter]:
    def observe(channel: str, flow: str, outcome: str, seconds: float) -> None:
        metrics.CHANNEL_CALLS.labels(channel, flow, outcome).observe(seconds)

    adapters = {}
    for name, settings in cfg.channels.items():
        if settings.enabled:
            adapters[name] = ADAPTERS[name](settings, ChannelHttp(session, name, settings.timeout, observe))
    return adapters


def create_app(cfg: Config, *, run_relay: bool = True, run_recovery: bool = True, workers: int = 1) -> web.Application:
    app = web.Application(middlewares=[errors_and_metrics], client_max_size=cfg.server.max_body)
    app[CONFIG] = cfg

    async def resources(app: web.Application):
        pool = await db.create_pool(cfg.database)
        app[POOL] = pool
        journal = Journal(pool, cfg.journal.batch_max, cfg.journal.max_wait_ms)
        journal.start()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=512,
                                                                       keepalive_timeout=60, ttl_dns_cache=300))
        adapters = build_adapters(cfg, session)
        b = cfg.breaker
        breakers = {name: Breaker(name, window=int(b.get("window", 20)), failure_ratio=float(b.get("failure_ratio", .5)),
                                  min_calls=int(b.get("min_calls", 10)), open_seconds=float(b.get("open_seconds", 5.0)))
                    for name in adapters}
        engine = Engine(cfg, pool, journal, adapters, breakers, Router(cfg.routing))
        app[ENGINE] = engine
        box = SecretBox(cfg.security.master_key)
        app[AUTH] = Authenticator(Merchants(pool, box), NonceStore(pool, cfg.security.replay_window),
                                  RateLimiter(cfg.security.rate_limit_per_second, cfg.security.rate_limit_burst, workers),
                                  cfg.security.replay_window)
        background: list[Any] = []
        if run_recovery:
            rec = Recovery(engine, cfg.payments.recovery_interval, cfg.payments.recovery_batch)
            rec.start()
            background.append(rec)
        if run_relay and cfg.kafka.bootstrap:
            relay = Relay(cfg)
            relay.start()
            app[RELAY] = relay
            background.append(relay)
        from paycore.webhooks import Dispatcher
        w = cfg.webhooks
        dispatcher = Dispatcher(pool, box, interval=w.interval, batch=w.batch, timeout=w.timeout, schedule=w.schedule)
        dispatcher.start()
        background.append(dispatcher)
        sampler = metrics.Sampler(pool, cfg.metrics.sample_interval)   # pool, outbox, webhook, reconciliation gauges
        sampler.start()
        background.append(sampler)
        yield
        for task in background:
            await task.stop()
        await journal.stop()
        for a in adapters.values():
            await a.aclose()
        await session.close()
        await pool.close()

    app.cleanup_ctx.append(resources)
    r = app.router
    r.add_post("/v1/payments", create_payment)
    r.add_get("/v1/payments", find_payment)
    r.add_get("/v1/payments/{id}", get_payment)
    r.add_post("/v1/payments/{id}/cancel", cancel_payment)
    r.add_post("/v1/payments/{id}/refunds", create_refund)
    r.add_get("/v1/refunds/{id}", get_refund)
    r.add_post("/notify/{channel}", notify)
    r.add_post("/notify/{channel}/refund", notify)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics_handler)
    r.add_get("/openapi.json", openapi)
    from paycore import onecode; onecode.setup(app)  # noqa: E702  (GET /c/{code}: the one-code pages)
    return app
