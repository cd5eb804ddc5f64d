"""The benchmark's load generator: open loop, one process, uvloop and a bare
HTTP/1.1 keep-alive client (an ``asyncio.Protocol``, no aiohttp client), so
that it costs a few tens of microseconds per request and the machine's other
core is left for the simulators.

``python -m loadtest.gen`` reads a JSON spec on stdin, sends requests at
``rate`` per second for ``warmup + duration`` seconds, each signed as api.md
says, and writes to stdout ``START`` when the measured window opens, ``END``
when it closes (the bench reads the paycore CPU counters at those lines) and
``RESULT {json}`` after the window's requests have come back.

Open loop: request *i* is due at ``t0 + i / rate`` whatever happened to the
ones before, and its latency counts from that moment, so a server that falls
behind shows it in the percentiles (no coordinated omission). Requests wait
for a free connection when ``max_conns`` are busy.

Kinds: ``barcode`` (POST /v1/payments with a payment code of ``channel``),
``qr`` (POST /v1/payments method qr, then the customer pays at the
simulator's ``/_sim/customer/pay``: the simulator notifies paycore),
``refund`` (a partial refund of one of ``payments``, round robin),
``prepare`` (barcode payments whose ids are returned, for refunds).
"""
from __future__ import annotations

import asyncio
import collections
import os
import random
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from loadtest import common

TIMEOUT = 10.0
#: a second with fewer requests than this has no p99 of its own worth the name (the 1 % slowest of 50 is one)
MIN_PER_SECOND = 50


class Conn(asyncio.Protocol):
    __slots__ = ("t", "buf", "need", "hdr", "status", "fut", "closed", "since")

    def __init__(self) -> None:
        self.t: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1
        self.hdr = 0
        self.status = 0
        self.fut: asyncio.Future | None = None
        self.closed = False
        self.since = 0.0

    def connection_made(self, transport) -> None:
        self.t = transport

    def request(self, data: bytes) -> asyncio.Future:
        self.fut = fut = asyncio.get_running_loop().create_future()
        self.since = time.monotonic()
        self.t.write(data)  # type: ignore[union-attr]
        return fut

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.need < 0:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(buf[:i]).lower()
            self.status = int(head[9:12])
            j = head.find(b"\r\ncontent-length:")
            if j < 0:  # every answer here carries a length; anything else is a protocol error
                self.t.abort()  # type: ignore[union-attr]
                return
            k = head.find(b"\r\n", j + 2)
            self.need = i + 4 + int(head[j + 17:k if k > 0 else None])
            self.hdr = i + 4
        if len(buf) >= self.need:
            body = bytes(buf[self.hdr:self.need])
            del buf[:self.need]
            self.need = -1
            fut, self.fut = self.fut, None
            if fut is not None and not fut.done():
                fut.set_result((self.status, body))

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError("connection lost"))


class Pool:
    """Keep-alive connections to one host; at most ``max_conns``, one request at a time each."""

    def __init__(self, url: str, max_conns: int) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.hosthdr = f"{self.host}:{self.port}"
        self.max = max_conns
        self.idle: list[Conn] = []
        self.busy: set[Conn] = set()
        self.total = 0
        self.waiters: collections.deque[asyncio.Future] = collections.deque()

    async def _acquire(self) -> Conn:
        loop = asyncio.get_running_loop()
        while True:
            while self.idle:
                c = self.idle.pop()
                if not c.closed:
                    return c
                self.total -= 1
            if self.total < self.max:
                self.total += 1
                try:
                    _, c = await loop.create_connection(Conn, self.host, self.port)
                except BaseException:
                    self.total -= 1
                    raise
                return c
            w = loop.create_future()
            self.waiters.append(w)
            c = await w
            if c is not None and not c.closed:
                return c

    def _release(self, c: Conn) -> None:
        self.busy.discard(c)
        if c.closed:
            self.total -= 1
            c = None  # type: ignore[assignment]
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(c)
                return
        if c is not None:
            self.idle.append(c)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        c = await self._acquire()
        self.busy.add(c)
        try:
            return await c.request(data)
        finally:
            self._release(c)

    def reap(self, now: float) -> None:
        for c in list(self.busy):
            if c.fut is not None and now - c.since > TIMEOUT and c.t is not None:
                c.t.abort()

    def close(self) -> None:
        for c in list(self.idle) + list(self.busy):
            if c.t is not None:
                c.t.close()


class Signer:
    def __init__(self, merchant: str, secret: str, host: str) -> None:
        self.m = merchant
        self.key = secret.encode()
        self.host = host

    def build(self, method: str, path: str, body: bytes = b"") -> bytes:
        ts, n = str(int(time.time())), common.nonce()
        sig = common.sign(self.key, method, path, ts, n, body)
        ctype = "Content-Type: application/json\r\n" if body else ""
        return (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{ctype}Content-Length: {len(body)}\r\n"
                f"X-Paycore-Merchant: {self.m}\r\nX-Paycore-Timestamp: {ts}\r\nX-Paycore-Nonce: {n}\r\n"
                f"X-Paycore-Signature: {sig}\r\n\r\n").encode() + body


def plain_post(host: str, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    kind = spec["kind"]
    rate = float(spec["rate"])
    warmup, duration = float(spec.get("warmup", 1.0)), float(spec["duration"])
    pool = Pool(spec["target"], int(spec.get("max_conns", 512)))
    sim = Pool(spec["sim"], int(spec.get("max_conns", 512))) if spec.get("sim") else None
    signer = Signer(spec["merchant"], spec["secret"], pool.hosthdr)
    channel = spec.get("channel", "bankwallet")
    rnd = random.Random(os.getpid())
    payments: list[str] = spec.get("payments") or []
    refund_amount = int(spec.get("refund_amount", 500))
    pay_amount = spec.get("amount")
    tag = f"b{os.getpid():x}{int(time.time()) % 100000:x}"

    #: the latencies of the requests due in the window, by the second they were due in (for each second's p99)
    by_second: collections.defaultdict[int, list[float]] = collections.defaultdict(list)
    errors: collections.Counter[str] = collections.Counter()
    ok_in_window = 0
    ids: list[str] = []
    t0 = loop.time() + 0.05
    w0, w1 = t0 + warmup, t0 + warmup + duration

    def fail(why: str, due: float) -> None:
        if w0 <= due < w1:
            errors[why] += 1

    def done(due: float) -> None:
        nonlocal ok_in_window
        t = loop.time()
        if w0 <= due < w1:
            by_second[int(due - w0)].append(t - due)
        if w0 <= t < w1:
            ok_in_window += 1

    async def barcode(i: int, due: float) -> None:
        body = orjson.dumps({"merchant_order_no": f"{tag}x{i}", "amount": pay_amount or common.amount(rnd),
                             "currency": "CNY", "method": "barcode",
                             "auth_code": common.auth_code(channel, rnd), "subject": "bench"})
        status, resp = await pool.request(signer.build("POST", "/v1/payments", body))
        if status not in (200, 201):
            return fail(f"http_{status}", due)
        if kind != "floor" and b'"status":"SUCCEEDED"' not in resp:
            return fail("not_succeeded", due)
        done(due)
        if kind == "prepare":
            ids.append(orjson.loads(resp)["id"])

    async def qr(i: int, due: float) -> None:
        body = orjson.dumps({"merchant_order_no": f"{tag}q{i}", "amount": common.amount(rnd), "currency": "CNY",
                             "method": "qr", "channel": channel, "subject": "bench"})
        status, resp = await pool.request(signer.build("POST", "/v1/payments", body))
        if status != 201:
            return fail(f"http_{status}", due)
        code = orjson.loads(resp).get("qr_code")
        if not code:
            return fail("no_qr_code", due)
        done(due)
        assert sim is not None
        s, _ = await sim.request(plain_post(sim.hosthdr, "/_sim/customer/pay", orjson.dumps({"qr_code": code})))
        if s != 200:
            fail(f"customer_pay_{s}", due)

    async def refund(i: int, due: float) -> None:
        pid = payments[i % len(payments)]
        body = orjson.dumps({"refund_no": f"{tag}r{i}", "amount": refund_amount, "reason": "bench"})
        status, resp = await pool.request(signer.build("POST", f"/v1/payments/{pid}/refunds", body))
        if status != 201:
            return fail(f"http_{status}", due)
        if b'"status":"SUCCEEDED"' not in resp:
            return fail("not_succeeded", due)
        done(due)

    flow = {"barcode": barcode, "floor": barcode, "prepare": barcode, "qr": qr, "refund": refund}[kind]
    pending: set[asyncio.Task] = set()

    async def one(i: int, due: float) -> None:
        try:
            await flow(i, due)
        except (ConnectionError, OSError):
            fail("connection", due)
        except Exception as e:  # a malformed answer: counted, never fatal
            fail(type(e).__name__, due)

    cpu0 = os.times()
    i = 0
    started = ended = False
    last_reap = t0
    while True:
        now = loop.time()
        if not started and now >= w0:
            print("START", flush=True)
            started = True
        if now >= w1:
            break
        due_n = int((now - t0) * rate) if now > t0 else 0
        while i < due_n:
            due = t0 + i / rate
            t = loop.create_task(one(i, due))
            pending.add(t)
            t.add_done_callback(pending.discard)
            i += 1
        if now - last_reap > 0.5:
            pool.reap(time.monotonic())
            if sim:
                sim.reap(time.monotonic())
            last_reap = now
        await asyncio.sleep(0.001)
    print("END", flush=True)
    ended = True
    # let the window's requests come back (bounded), then count what did not
    deadline = loop.time() + TIMEOUT + 1
    while pending and loop.time() < deadline:
        await asyncio.sleep(0.05)
        pool.reap(time.monotonic())
    for t in list(pending):
        t.cancel()
    late = len(pending)
    cpu1 = os.times()
    pool.close()
    if sim:
        sim.close()
    seconds = [sorted(by_second[k]) for k in sorted(by_second)]
    lat = sorted(x for xs in seconds for x in xs)

    def pct(q: float, xs: list[float] = lat) -> float | None:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2) if xs else None

    return {"kind": kind, "rate": rate, "offered": int(duration * rate), "ok": len(lat),
            "achieved": round(ok_in_window / duration, 1), "errors": dict(errors), "unfinished": late,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            # each whole second's p99 (its requests by due time), where it had enough of them to have one
            "p99_ms_by_second": [pct(0.99, xs) for xs in seconds if len(xs) >= MIN_PER_SECOND],
            "connections": pool.total, "ids": ids, "ended": ended,
            "gen_cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 2)}


def main() -> None:
    spec = orjson.loads(sys.stdin.buffer.read())
    from paycore.runtime import run as _run  # uvloop when present
    result = _run(run(spec))
    sys.stdout.write("RESULT " + orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
