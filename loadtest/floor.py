"""The floor: the least any gateway built on aiohttp + uvloop can do per request.

A bare server that reads the request, parses its JSON body, makes one
outbound HTTP call to the simulator the scenario talks to (``GET
/_sim/health``, answered without provider logic) over one shared
``ClientSession`` with keep-alive, parses that answer and replies with a
small JSON body. No auth, no validation, no database, no events.
``make bench`` runs it on paycore's core at the rate paycore sustained and
divides its CPU per request by paycore's.

For a channel whose protocol signs with RSA (``--rsa``: WeChat Pay v3, the
``barcode_rsa`` scenario), the floor also does that channel's mandatory
cryptography, so that the ratio compares like with like: one RSA-2048
PKCS#1 v1.5 SHA-256 signature of the outgoing request and one verification of
a signature over the answer (the simulator's health answer is not signed, so
the floor verifies a signature of the same size made at start-up: the same
work as verifying the provider's).

``python -m loadtest.floor --port P --upstream http://127.0.0.1:SIMPORT [--rsa]``
"""
from __future__ import annotations

import argparse
import base64

import aiohttp
import orjson
import uvloop
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paycore.runtime import LISTEN_BACKLOG


class RsaWork:
    """One sign of the request and one verify of an answer's signature, as an RSA channel does."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public = self.key.public_key()
        self.answer_sig = b""

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()

    def verify(self, data: bytes) -> None:
        if not self.answer_sig:     # the first answer: sign it once, as the provider would have
            self.answer_sig = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        self.public.verify(self.answer_sig, data, padding.PKCS1v15(), hashes.SHA256())


def make_app(upstream: str, rsa_work: RsaWork | None = None) -> web.Application:
    app = web.Application()
    url = upstream.rstrip("/") + "/_sim/health"
    state: dict[str, aiohttp.ClientSession] = {}

    async def session_ctx(app: web.Application):
        state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))
        yield
        await state["s"].close()

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        req = orjson.loads(raw)
        headers = {"Authorization": rsa_work.sign(raw)} if rsa_work else None
        async with state["s"].get(url, headers=headers) as r:
            body = await r.read()
        if rsa_work:
            rsa_work.verify(body)
        answer = orjson.loads(body)
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
    ap.add_argument("--rsa", action="store_true", help="also one RSA-2048 sign and one verify per request")
    a = ap.parse_args()
    # the readiness line is what make bench waits for; SIGTERM stops it
    web.run_app(make_app(a.upstream, RsaWork() if a.rsa else None), host="127.0.0.1", port=a.port, access_log=None,
                backlog=LISTEN_BACKLOG, loop=uvloop.new_event_loop(), print=lambda _: print("floor listening", flush=True))


if __name__ == "__main__":
    main()
