"""The floor: the least any gateway built on aiohttp + uvloop can do per request.

A bare server that reads the request, parses its JSON body, makes one
outbound HTTP call to the simulator the scenario talks to (``GET
/_sim/health``, answered without provider logic) over one shared
``ClientSession`` with keep-alive, parses that answer and replies with a
small JSON body. No auth, no validation, no database, no events.
``make bench`` runs it on paycore's core at the rate paycore sustained and
divides its CPU per request by paycore's.

``python -m loadtest.floor --port P --upstream http://127.0.0.1:SIMPORT``
"""
from __future__ import annotations

import argparse

import aiohttp
import orjson
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    url = upstream.rstrip("/") + "/_sim/health"
    state: dict[str, aiohttp.ClientSession] = {}

    async def session_ctx(app: web.Application):
        state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))
        yield
        await state["s"].close()

    async def handle(request: web.Request) -> web.Response:
        req = orjson.loads(await request.read())
        async with state["s"].get(url) as r:
            answer = orjson.loads(await r.read())
        return web.Response(body=orjson.dumps({"merchant_order_no": req.get("merchant_order_no"),
                                               "upstream": answer.get("channel"), "status": "OK"}),
                            content_type="application/json")

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/{tail:.*}", handle)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    a = ap.parse_args()
    import uvloop
    # the readiness line is what make bench waits for; SIGTERM stops it
    web.run_app(make_app(a.upstream), host="127.0.0.1", port=a.port, access_log=None, backlog=4096,
                loop=uvloop.new_event_loop(), print=lambda _: print("floor listening", flush=True))


if __name__ == "__main__":
    main()
