"""Structured logs: every line a request logs carries its request id, merchant
and payment id, set by the API middleware and reset for the next request on
the same connection; card-like numbers are masked; the access log and the
level come from the config."""
from __future__ import annotations

import io
import json
import logging

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paycore import logs
from paycore.metrics import Metrics
from paycore.http import app as api
from paycore import config as config_mod


async def test_request_context_is_in_every_line_and_reset_between_requests():
    cfg = config_mod.from_dict({"server": {"access_log": True, "log_level": "INFO"}}, env={})
    app = web.Application(middlewares=[api.errors_and_metrics])
    app[api.CONFIG] = cfg
    app[api.METRICS] = Metrics()

    async def handler(request: web.Request) -> web.Response:
        if request.match_info["id"] == "pay_first":
            logs.merchant_id.set("m_demo")   # what merchant_of does once the signature checks out
        logging.getLogger("paycore.engine").warning("declined card 6222021234567890123")
        logging.getLogger("paycore.engine").debug("not at INFO")
        return web.json_response({})

    app.router.add_get("/v1/payments/{id}", handler)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    logs.setup(cfg.server.log_level, out)
    try:
        async with TestServer(app) as server, TestClient(server) as client:
            first = await client.get("/v1/payments/pay_first", headers={"X-Request-Id": "req-abc.1"})
            second = await client.get("/v1/payments/pay_second")
            bad = await client.get("/v1/payments/pay_third", headers={"X-Request-Id": "no spaces allowed"})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert first.headers["X-Request-Id"] == "req-abc.1"
    assert second.headers["X-Request-Id"] and second.headers["X-Request-Id"] != "req-abc.1"
    assert bad.headers["X-Request-Id"] != "no spaces allowed"

    lines = [ln for ln in map(json.loads, out.getvalue().splitlines()) if ln["logger"].startswith("paycore.")]
    assert not any(ln["msg"] == "not at INFO" for ln in lines)
    warn1, access1, warn2, access2 = lines[:4]
    assert warn1["request_id"] == access1["request_id"] == "req-abc.1"
    assert warn1["payment_id"] == "pay_first" and warn1["merchant_id"] == "m_demo"
    assert "6222021234567890123" not in warn1["msg"] and "622202*********0123" in warn1["msg"]
    assert access1["logger"] == "paycore.access" and access1["msg"].startswith("GET /v1/payments/pay_first 200 ")
    assert warn2["payment_id"] == "pay_second" and "merchant_id" not in warn2, "context leaked to the next request"
    assert warn2["request_id"] == second.headers["X-Request-Id"] == access2["request_id"]


def test_log_level_comes_from_the_config_and_env():
    assert config_mod.from_dict({"server": {"log_level": "WARNING"}}, env={}).server.log_level == "WARNING"
    assert config_mod.from_dict({}, env={"PAYCORE_LOG_LEVEL": "DEBUG"}).server.log_level == "DEBUG"
