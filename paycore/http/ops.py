"""Operations endpoints: ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``."""
from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from paycore import workers
from paycore.http.common import ENGINE, JSON, METRICS, POOL, RELAY, json_response

OPENAPI_FILE = Path(__file__).parent / "static" / "openapi.json"


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
    looping = workers.crash_loop()   # serve --workers N: workers keep dying and being restarted
    if looping:
        degraded.append("workers:crash_loop")
    relay = request.app.get(RELAY)
    body = {"status": "ready" if db_ok and not looping else "unavailable", "database": db_ok, "degraded": degraded,
            "channels": breakers, "relay_leader": bool(relay and relay.is_leader)}
    return json_response(body, 200 if db_ok and not looping else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    data, ctype = request.app[METRICS].render()
    return web.Response(body=data, headers={"Content-Type": ctype})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI_FILE.read_bytes(), content_type=JSON)
