"""Merchant webhooks: signed, persisted, retried with backoff.

The journal writes a ``webhooks`` row in the same transaction as every final
event of a payment with a ``notify_url``; this dispatcher (one per process,
rows claimed with ``skip locked``) POSTs the event JSON with
``X-Paycore-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
until the merchant answers 2xx. Attempts follow ``SCHEDULE`` (10 attempts
over about 2.5 hours); then the row is FAILED and can be replayed with
``paycore webhooks replay``.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from datetime import timedelta

import aiohttp
import asyncpg

from paycore import metrics
from paycore.auth import SecretBox
from paycore.models import now

log = logging.getLogger("paycore.webhooks")

#: seconds to wait after attempt n (1-based) failed
SCHEDULE = (5, 15, 60, 180, 600, 900, 1800, 2400, 3600)
MAX_ATTEMPTS = len(SCHEDULE) + 1
LEASE = 60


def signature_header(secret: bytes, body: bytes, ts: int | None = None) -> str:
    t = int(time.time()) if ts is None else ts
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox, interval: float = 0.5, batch: int = 100,
                 timeout: float = 5.0, schedule: tuple[float, ...] = SCHEDULE) -> None:
        self.pool = pool
        self.box = box
        self.interval = interval
        self.batch = batch
        self.timeout = timeout
        self.schedule = schedule
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="webhooks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session:
            await self._session.close()

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        while True:
            try:
                n = await self.tick()
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError):
                n = 0
            except Exception:
                log.exception("webhook dispatch failed")
                n = 0
            if n < self.batch:
                await asyncio.sleep(self.interval)

    async def tick(self) -> int:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "select w.id, w.url, w.payload, w.attempts, w.merchant_id, m.secret_enc from webhooks w "
                    "join merchants m on m.id = w.merchant_id where w.status = 'PENDING' "
                    "and w.next_attempt_at <= now() order by w.next_attempt_at limit $1 for update of w skip locked",
                    self.batch)
                if rows:
                    await conn.execute("update webhooks set next_attempt_at = now() + make_interval(secs => $2) "
                                       "where id = any($1::bigint[])", [r["id"] for r in rows], LEASE)
            backlog = await conn.fetchval("select count(*) from webhooks where status = 'PENDING'")
        metrics.WEBHOOK_BACKLOG.set(backlog)
        await asyncio.gather(*(self.deliver(r) for r in rows))
        return len(rows)

    async def deliver(self, row: asyncpg.Record) -> None:
        secret = self.box.open(row["merchant_id"], row["secret_enc"]).get_bytes()
        body = bytes(row["payload"])
        headers = {"Content-Type": "application/json", "X-Paycore-Signature": signature_header(secret, body),
                   "User-Agent": "paycore-webhooks/1"}
        status, error = None, None
        assert self._session is not None
        try:
            async with self._session.post(row["url"], data=body, headers=headers) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            error = type(e).__name__
        attempts = row["attempts"] + 1
        if status is not None and 200 <= status < 300:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            await self.pool.execute("update webhooks set status = 'DELIVERED', attempts = $2, last_status = $3, "
                                    "last_error = null, delivered_at = now() where id = $1", row["id"], attempts, status)
            return
        if attempts >= len(self.schedule) + 1:
            metrics.WEBHOOK_DELIVERIES.labels("gave_up").inc()
            await self.pool.execute("update webhooks set status = 'FAILED', attempts = $2, last_status = $3, "
                                    "last_error = $4 where id = $1", row["id"], attempts, status, error)
            return
        metrics.WEBHOOK_DELIVERIES.labels("retry").inc()
        delay = self.schedule[attempts - 1]
        await self.pool.execute("update webhooks set attempts = $2, last_status = $3, last_error = $4, "
                                "next_attempt_at = $5 where id = $1", row["id"], attempts, status, error,
                                now() + timedelta(seconds=delay))
