"""The HTTP application: the merchant API (api.md), the providers' notification
endpoints, operations endpoints, the one-code pages, the operations console
and the merchant portal.

Shared resources are ``web.AppKey``s (paycore.http.common) created and torn
down in ``cleanup_ctx``; nothing is global and nothing changes after start-up.
Every error leaves as ``{"error": {"code", "message", "field"?}}``; an
unexpected exception is logged (once, without request data) and answered with
a generic 500 body.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from channels.base import ChannelAdapter
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from paycore import logs
from paycore.config import Config
from paycore.core.afterrecovery import AfterRecovery
from paycore.core.breaker import Breaker
from paycore.core.engine import Engine
from paycore.core.fees import FeeBook
from paycore.core.journal import Journal
from paycore.core.payouts import Payouts
from paycore.core.recovery import Recovery
from paycore.core.routing import Router
from paycore.core.splits import Splits
from paycore.errors import PaycoreError
from paycore.http import console, merchant_api, moneyafter_api, notify, onecode, ops, ops_api, settlements
from paycore.http.common import AUTH, CONFIG, ENGINE, JSON, METRICS, POOL, RELAY, error_response
from paycore.merchants.auth import Authenticator, InFlight, Merchants, NonceStore, RateLimiter, SecretBox
from paycore.metrics import Flusher, Metrics, Sampler
from paycore.ops.maintain import Maintainer
from paycore.ops.webhooks import Dispatcher
from paycore.outbox.relay import Relay
from paycore.storage import db

log = logging.getLogger("paycore.api")
access_log = logging.getLogger("paycore.access")

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
        return web.Response(body=body, status=e.status, content_type=JSON, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, route, rid)
        status = 500
        return web.Response(body=orjson.dumps({"error": {"code": "INTERNAL", "message":
                                                          f"internal error (reference {rid})"}}),
                            status=500, content_type=JSON)
    finally:
        m = request.app[METRICS]
        m.count(m.http_requests, route, request.method, str(status))
        m.time(m.http_latency, time.perf_counter() - t0, route)
        if request.app[CONFIG].server.access_log:
            access_log.info("%s %s %d %.1fms", request.method, request.path, status, (time.perf_counter() - t0) * 1e3)


class ContractErrorsHandler(RequestHandler):
    """A connection whose own errors (aiohttp's, raised before any route or middleware: a request
    line or header too long, an undecodable request, a handler that timed out) leave in the
    contract's format too, never ``text/plain``. The message is generic: what the parser quotes
    is the sender's raw bytes, which may hold anything."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)   # logs; raises if an answer already began
        err = {"code": _HTTP_CODES.get(status, "INVALID_REQUEST" if status < 500 else "INTERNAL"),
               "message": "the HTTP request could not be read" if status < 500 else "internal error"}
        if status == 400:
            err["field"] = "request"
        resp = web.Response(body=orjson.dumps({"error": err}), status=status, content_type=JSON)
        resp.force_close()
        return resp


class ContractServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ContractErrorsHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser-level errors in the contract's format."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = ContractServer   # the same server; only the per-connection handler it makes differs
        return server


# ------------------------------------------------------------------ wiring
def build_adapters(cfg: Config, session: ProviderClient, metrics: Metrics) -> dict[str, ChannelAdapter]:
    adapters = {}
    for name, settings in cfg.channels.items():
        if settings.enabled:
            adapters[name] = ADAPTERS[name](settings, ChannelHttp(session, name, settings.timeout,
                                                                  metrics.observe_channel_call))
    return adapters


def create_app(cfg: Config, *, run_relay: bool = True, run_recovery: bool = True, workers: int = 1) -> web.Application:
    app = web.Application(middlewares=[errors_and_metrics], client_max_size=cfg.server.max_body)
    app[CONFIG] = cfg
    app[METRICS] = metrics = Metrics()

    async def resources(app: web.Application):
        pool = await db.create_pool(cfg.database)
        app[POOL] = pool
        jpool = await db.journal_pool(cfg.database)
        journal = Journal(jpool, cfg.journal.batch_max, cfg.journal.max_wait_ms, metrics=metrics,
                          acquire_timeout=cfg.database.command_timeout)
        journal.start()
        session = ProviderClient(limit_per_origin=512)
        adapters = build_adapters(cfg, session, metrics)
        b = cfg.breaker
        breakers = {name: Breaker(name, window=int(b.get("window", 20)), failure_ratio=float(b.get("failure_ratio", .5)),
                                  min_calls=int(b.get("min_calls", 10)), open_seconds=float(b.get("open_seconds", 5.0)),
                                  metrics=metrics)
                    for name in adapters}
        engine = Engine(cfg, pool, journal, adapters, breakers, Router(cfg.routing), metrics,
                        FeeBook(pool, cfg.settlement.fee_rule_lead))
        app[ENGINE] = engine
        box = SecretBox(cfg.security.master_key)
        app[AUTH] = Authenticator(Merchants(pool, box), NonceStore(pool, cfg.security.replay_window),
                                  RateLimiter(cfg.security.rate_limit_per_second, cfg.security.rate_limit_burst, workers),
                                  cfg.security.replay_window, metrics=metrics,
                                  inflight=InFlight(cfg.security.merchant_concurrency, metrics))
        # money after the payment (issue 16): splits and payouts, with their own recovery step
        splits, payouts = Splits(engine, box), Payouts(engine, cfg, box)
        engine.before_refund = splits.before_refund
        app[moneyafter_api.SPLITS], app[moneyafter_api.PAYOUTS] = splits, payouts
        background: list[Any] = []
        if run_recovery:
            rec = Recovery(engine, cfg.payments.recovery_interval, cfg.payments.recovery_batch)
            rec.start()
            background.append(rec)
            after = AfterRecovery(splits, payouts, cfg.payments.recovery_interval)
            after.start()
            background.append(after)
        if run_relay and cfg.kafka.bootstrap and cfg.kafka.relay == "workers":   # "separate": `paycore relay`
            relay = Relay(cfg, metrics=metrics)
            relay.start()
            app[RELAY] = relay
            background.append(relay)
        w = cfg.webhooks
        dispatcher = Dispatcher(pool, box, interval=w.interval, batch=w.batch, timeout=w.timeout, schedule=w.schedule,
                                metrics=metrics, allow_http=w.allow_http, allow_private=w.allow_private,
                                proxy=w.proxy)
        dispatcher.start()
        background.append(dispatcher)
        if cfg.data.maintain_interval > 0:   # partitions ahead, retention (one node at a time)
            maintainer = Maintainer(cfg)
            maintainer.start()
            background.append(maintainer)
        sampler = Sampler(pool, metrics, cfg.metrics.sample_interval)   # pool, outbox, webhook, reconciliation gauges
        sampler.start()
        background.append(sampler)
        flusher = Flusher(metrics)   # the per-request counts, into the exported values every second
        flusher.start()
        background.append(flusher)
        yield
        for task in background:
            await task.stop()
        # shutdown stays bounded when the database does not answer: what is still queued is given a
        # few seconds (journal changes were never acknowledged to anyone; provider calls are a record)
        for closing in (engine.calls.close(), journal.stop()):
            try:
                await asyncio.wait_for(closing, cfg.database.connect_timeout + 2.0)
            except asyncio.TimeoutError:
                log.warning("shutdown: gave up waiting for the database")
        for a in adapters.values():
            await a.aclose()
        await session.close()
        for p in (jpool, pool):
            try:   # a database that does not answer must not hold the process's exit (SIGTERM → exit)
                await asyncio.wait_for(p.close(), cfg.database.connect_timeout + 2.0)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                p.terminate()
        metrics.flush()   # what the last requests counted

    app.cleanup_ctx.append(resources)
    r = app.router
    r.add_post("/v1/payments", merchant_api.create_payment)
    r.add_get("/v1/payments", merchant_api.find_payment)
    r.add_get("/v1/payments/{id}", merchant_api.get_payment)
    r.add_post("/v1/payments/{id}/cancel", merchant_api.cancel_payment)
    r.add_post("/v1/payments/{id}/refunds", merchant_api.create_refund)
    r.add_get("/v1/refunds/{id}", merchant_api.get_refund)
    r.add_get("/v1/settlements", settlements.get_settlement)
    r.add_get("/v1/settlements/{date}/lines", settlements.list_lines)
    r.add_get("/v1/settlements/{date}.csv", settlements.get_file)
    r.add_post("/notify/{channel}", notify.notify)
    r.add_post("/notify/{channel}/refund", notify.notify)
    r.add_get("/healthz", ops.healthz)
    r.add_get("/readyz", ops.readyz)
    r.add_get("/metrics", ops.metrics_handler)
    r.add_get("/openapi.json", ops.openapi)
    moneyafter_api.setup(app)   # receivers, splits, payouts
    onecode.setup(app)   # GET /c/{code}: the one-code pages
    ops_api.setup(app)   # /ops/attention, /ops/payments: the operators' API
    console.setup(app)   # /console/ (operators) and /portal/ (merchants)
    return app
