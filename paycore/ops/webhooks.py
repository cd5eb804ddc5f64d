"""Merchant webhooks: signed, persisted, retried with backoff.

The journal writes a ``webhooks`` row in the same transaction as every final
event of a payment with a ``notify_url``; this dispatcher (one per process,
rows claimed with ``skip locked`` and leased, so several processes share the
work and a process that dies mid-delivery leaves rows that become due again)
POSTs the event JSON with
``X-Paycore-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
until the merchant answers 2xx. Attempts follow ``SCHEDULE`` (10 attempts
over about 2.5 hours; ``[webhooks] schedule`` in the config overrides it);
then the row is FAILED and ``paycore webhooks replay`` gives it a fresh
schedule. ``paycore webhooks list`` shows rows by status or payment.

Delivery is at least once: a merchant dedupes on ``event_id`` (also sent as
``X-Paycore-Event-Id``).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg

from paycore.metrics import Metrics
from paycore.tasks import Loop
from paycore.merchants.auth import SecretBox
from paycore.core.models import now

log = logging.getLogger("paycore.webhooks")

#: seconds to wait after attempt n (1-based) failed: 10 attempts over 2 h 43 min
SCHEDULE = (5, 15, 60, 180, 600, 900, 1800, 2400, 3600)
MAX_ATTEMPTS = len(SCHEDULE) + 1
STATUSES = ("PENDING", "DELIVERED", "FAILED")


def signature_header(secret: bytes, body: bytes, ts: int | None = None) -> str:
    t = int(time.time()) if ts is None else ts
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, tolerance: float = 300.0,
                     at: float | None = None) -> bool:
    """What a merchant does on receipt (and what the tests do): recompute the MAC over
    ``"<t>.<body>"``, compare in constant time, refuse a stale ``t``."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if at is None else at) - t) > tolerance:
        return False
    want = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given)


class Dispatcher(Loop):
    """Delivers due merchant webhooks, signed, on the retry schedule."""
    name = "webhooks"

    def __init__(self, pool: asyncpg.Pool, box: SecretBox, interval: float = 0.5, batch: int = 100,
                 timeout: float = 5.0, schedule: tuple[float, ...] = SCHEDULE, *, metrics: Metrics) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.box = box
        self.metrics = metrics
        self.batch = batch
        self.timeout = timeout
        self.schedule = tuple(schedule) or SCHEDULE
        # a claimed row is due again after this if its process died mid-delivery
        self.lease = 2 * timeout + 5
        self._session: aiohttp.ClientSession | None = None

    async def setup(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def teardown(self) -> None:
        if self._session:
            await self._session.close()

    async def step(self) -> float:
        return 0.0 if await self.tick() >= self.batch else self.interval

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError))

    async def tick(self) -> int:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "select w.id, w.event_id, w.url, w.payload, w.attempts, w.merchant_id, m.secret_enc "
                    "from webhooks w join merchants m on m.id = w.merchant_id where w.status = 'PENDING' "
                    "and w.next_attempt_at <= now() order by w.next_attempt_at limit $1 for update of w skip locked",
                    self.batch)
                if rows:
                    await conn.execute("update webhooks set next_attempt_at = now() + make_interval(secs => $2) "
                                       "where id = any($1::bigint[])", [r["id"] for r in rows], self.lease)
        if rows:
            await asyncio.gather(*(self.deliver(r) for r in rows))
        return len(rows)

    async def deliver(self, row: asyncpg.Record) -> None:
        secret = self.box.open(row["merchant_id"], row["secret_enc"]).get_bytes()
        body = bytes(row["payload"])
        attempts = row["attempts"] + 1
        headers = {"Content-Type": "application/json", "X-Paycore-Signature": signature_header(secret, body),
                   "X-Paycore-Event-Id": row["event_id"], "X-Paycore-Delivery-Attempt": str(attempts),
                   "User-Agent": "paycore-webhooks/1"}
        status, error = None, None
        assert self._session is not None
        t0 = time.perf_counter()
        try:
            async with self._session.post(row["url"], data=body, headers=headers) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as e:
            error = type(e).__name__
        self.metrics.webhook_latency.observe(time.perf_counter() - t0)
        if status is not None and 200 <= status < 300:
            self.metrics.webhook_deliveries.labels("delivered").inc()
            await self.pool.execute("update webhooks set status = 'DELIVERED', attempts = $2, last_status = $3, "
                                    "last_error = null, delivered_at = now() where id = $1", row["id"], attempts, status)
            return
        if attempts >= len(self.schedule) + 1:
            self.metrics.webhook_deliveries.labels("gave_up").inc()
            log.warning("webhook %s for merchant %s given up after %d attempts (last: %s)", row["event_id"],
                        row["merchant_id"], attempts, status or error)
            await self.pool.execute("update webhooks set status = 'FAILED', attempts = $2, last_status = $3, "
                                    "last_error = $4 where id = $1", row["id"], attempts, status, error)
            return
        self.metrics.webhook_deliveries.labels("retry").inc()
        delay = self.schedule[attempts - 1]
        await self.pool.execute("update webhooks set attempts = $2, last_status = $3, last_error = $4, "
                                "next_attempt_at = $5 where id = $1", row["id"], attempts, status, error,
                                now() + timedelta(seconds=delay))


# ------------------------------------------------------------------ operators
LIST_COLUMNS = ("id", "event_id", "merchant_id", "payment_id", "status", "attempts", "replays", "last_status",
                 "last_error", "next_attempt_at", "created_at", "delivered_at", "url")


async def listing(conn: Any, *, status: str | None = None, payment_id: str | None = None,
                  merchant_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, args = [], []
    for col, val in (("status", status), ("payment_id", payment_id), ("merchant_id", merchant_id)):
        if val:
            args.append(val)
            where.append(f"{col} = ${len(args)}")
    args.append(limit)
    rows = await conn.fetch(f"select {', '.join(LIST_COLUMNS)} from webhooks "
                            f"{'where ' + ' and '.join(where) if where else ''} "
                            f"order by created_at desc, id desc limit ${len(args)}", *args)
    return [dict(r) for r in rows]


async def replay(conn: Any, *, ids: list[int] | None = None, event_ids: list[str] | None = None,
                 all_failed: bool = False) -> list[int]:
    """Make webhooks due now with a fresh schedule; returns the ids replayed.

    By id or event id (any status: a merchant that lost a delivered event asks
    again), or every FAILED one."""
    if all_failed:
        cond, args = "status = 'FAILED'", []
    else:
        cond, args = "(id = any($1::bigint[]) or event_id = any($2::text[]))", [ids or [], event_ids or []]
    rows = await conn.fetch(f"update webhooks set status = 'PENDING', attempts = 0, replays = replays + 1, "
                            f"next_attempt_at = now(), delivered_at = null where {cond} returning id", *args)
    return sorted(r["id"] for r in rows)
