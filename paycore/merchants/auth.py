"""Merchant authentication: HMAC-SHA256 request signatures, the replay window,
nonces shared by every worker (in Postgres), merchants' secrets encrypted at
rest, and per-merchant rate limits.

Canonical string (api.md): ``METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY``.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import asyncpg
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from paycore.metrics import Metrics
from paycore.errors import RateLimited, Unauthenticated, Unavailable
from channels.secrets import Secret

log = logging.getLogger("paycore.auth")
NONCE_RE = re.compile(r"^[A-Za-z0-9]{16,64}$")
MERCHANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SecretBox:
    """AES-256-GCM under a key derived (HKDF-SHA256) from the master key.

    The merchant id is the associated data, so a ciphertext cannot be moved to
    another merchant's row."""

    def __init__(self, master_key: Secret) -> None:
        if not master_key:
            raise ValueError("a master key is required (PAYCORE_MASTER_KEY)")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"paycore-merchant-secrets",
                   info=b"v1").derive(master_key.get_bytes())
        self._aead = AESGCM(key)

    def seal(self, merchant_id: str, secret: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), merchant_id.encode())

    def open(self, merchant_id: str, blob: bytes) -> Secret:
        return Secret(self._aead.decrypt(blob[:12], blob[12:], merchant_id.encode()))


def key_id(version: int) -> str:
    """The key id of a merchant's secret number ``version`` (1 for the first, +1 per rotation): what
    webhook signatures carry as ``kid=`` and ``paycore merchant rotate-secret`` prints."""
    return f"k{version}"


@dataclass(slots=True)
class Merchant:
    id: str
    name: str
    secret: Secret
    active: bool
    max_amount: int | None
    sub_merchants: dict[str, str]
    rate_limit: float | None
    loaded_at: float
    # the rotated-out secret, accepted until previous_until (epoch seconds) and not a moment after,
    # however long this entry stays cached
    previous: Secret | None = None
    previous_until: float = 0.0
    notify_url: str | None = None   # default webhook endpoint (merchants.default_notify_url)

    def secrets(self, at: float) -> list[Secret]:
        """The secrets a request signed at wall-clock time ``at`` may use, the current one first."""
        return [self.secret] + ([self.previous] if self.previous is not None and at < self.previous_until else [])


class Merchants:
    """Merchant lookups with a short cache, so that disabling a merchant reaches
    every worker within ``ttl`` seconds. A rotated secret reaches each worker at
    its first request signed with it: a signature that matches none of the
    cached secrets reloads the entry once (``refresh``) before it is refused."""

    #: a signature mismatch reloads an entry older than this (bounds the reloads bad signatures can cause)
    REFRESH_AFTER = 0.1

    def __init__(self, pool: asyncpg.Pool, box: SecretBox, ttl: float = 1.0) -> None:
        self.pool = pool
        self.box = box
        self.ttl = ttl
        self._cache: dict[str, Merchant | None] = {}
        self._at: dict[str, float] = {}
        self._loading: dict[str, asyncio.Future[Merchant | None]] = {}

    async def get(self, merchant_id: str, *, max_age: float | None = None) -> Merchant | None:
        now = time.monotonic()
        ttl = self.ttl if max_age is None else max_age
        if merchant_id in self._cache and now - self._at[merchant_id] < ttl:
            return self._cache[merchant_id]
        # one load per merchant at a time: under load, every request arriving while the
        # entry is stale would otherwise fetch (and decrypt) it again and crowd the pool
        fut = self._loading.get(merchant_id)
        if fut is None:
            fut = self._loading[merchant_id] = asyncio.ensure_future(self._load(merchant_id, now))
            fut.add_done_callback(lambda f: self._loaded(merchant_id, f))
        return await asyncio.shield(fut)

    def _loaded(self, merchant_id: str, fut: asyncio.Future) -> None:
        if self._loading.get(merchant_id) is fut:
            del self._loading[merchant_id]
        if not fut.cancelled():
            fut.exception()  # retrieved: every waiter has already been handed the outcome

    async def _load(self, merchant_id: str, now: float) -> Merchant | None:
        try:
            row = await self.pool.fetchrow(
                "select id, name, secret_enc, status, max_amount, sub_merchants, rate_limit, default_notify_url, "
                "case when prev_secret_expires_at > now() then prev_secret_enc end as prev_secret_enc, "
                "extract(epoch from prev_secret_expires_at)::float8 as prev_until "
                "from merchants where id = $1", merchant_id)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as e:
            raise Unavailable("database unavailable") from e
        m = None
        if row is not None:
            prev = row["prev_secret_enc"]
            m = Merchant(row["id"], row["name"], self.box.open(row["id"], row["secret_enc"]),
                         row["status"] == "active", row["max_amount"], dict(row["sub_merchants"] or {}),
                         row["rate_limit"], now, self.box.open(row["id"], prev) if prev else None,
                         row["prev_until"] or 0.0, row["default_notify_url"])
        if len(self._cache) > 10000:
            self._cache.clear(), self._at.clear()
        self._cache[merchant_id] = m
        self._at[merchant_id] = now
        return m


def canonical(method: str, path_qs: str, ts: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path_qs}\n{ts}\n{nonce}\n".encode() + body


def sign(secret: bytes, method: str, path_qs: str, ts: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret, canonical(method, path_qs, ts, nonce, body), hashlib.sha256).hexdigest()


class NonceStore:
    """Remembers (merchant, nonce) for the replay window in Postgres, shared by
    every worker. Checks from concurrent requests are batched into one insert."""

    def __init__(self, pool: asyncpg.Pool, window: int) -> None:
        self.pool = pool
        self.window = window
        self._pending: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._flushing = False

    async def fresh(self, merchant_id: str, nonce: str) -> bool:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((merchant_id, nonce, fut))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(lambda: asyncio.ensure_future(self._drain()))
        return await fut

    async def _drain(self) -> None:
        # one insert in flight at a time: what arrives meanwhile goes into the next,
        # so a busy worker sends few large inserts instead of one per loop turn
        try:
            while self._pending:
                await self._flush()
        finally:
            self._flushing = False

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        seen: set[tuple[str, str]] = set()
        unique: list[tuple[str, str, asyncio.Future[bool]]] = []
        for m, n, f in batch:
            if (m, n) in seen:
                f.set_result(False)   # the same nonce twice in one batch: the second is a replay
            else:
                seen.add((m, n))
                unique.append((m, n, f))
        expires = self.expiry()
        try:
            rows = await self.pool.fetch(
                "insert into nonces (merchant_id, nonce, expires_at) "
                "select m, n, $3 from unnest($1::text[], $2::text[]) as t(m, n) "
                "on conflict do nothing returning merchant_id, nonce",
                [u[0] for u in unique], [u[1] for u in unique], expires)
        except Exception as e:
            for _, _, f in unique:
                if not f.done():
                    f.set_exception(Unavailable("database unavailable"))
            if not isinstance(e, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)):
                log.exception("nonce store failed")
            return
        inserted = {(r[0], r[1]) for r in rows}
        for m, n, f in unique:
            if not f.done():
                f.set_result((m, n) in inserted)

    def expiry(self) -> datetime:
        """Until when a nonce recorded now is kept: twice the window its timestamp may be off by."""
        return datetime.now(timezone.utc) + timedelta(seconds=2 * self.window)

    async def purge(self) -> int:
        r = await self.pool.execute("delete from nonces where expires_at < now()")
        return int(r.split()[-1])


class RateLimiter:
    """Token bucket per merchant, per worker process (each worker gets
    ``rate / workers``), so the limit holds whatever the worker count."""

    def __init__(self, rate: float, burst: float, workers: int = 1) -> None:
        self.rate = rate / max(workers, 1)
        self.burst = burst / max(workers, 1)
        self.workers = max(workers, 1)
        self._buckets: dict[str, list[float]] = {}

    def check(self, merchant: Merchant) -> None:
        rate = (merchant.rate_limit / self.workers) if merchant.rate_limit else self.rate
        burst = max(rate * (self.burst / self.rate), 1.0) if self.rate else rate
        now = time.monotonic()
        b = self._buckets.get(merchant.id)
        if b is None:
            b = self._buckets[merchant.id] = [burst, now]
        tokens = min(burst, b[0] + (now - b[1]) * rate)
        b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            raise RateLimited("too many requests", retry_after=max(1, int((1.0 - tokens) / rate + 0.999)))
        b[0] = tokens - 1.0


class InFlight:
    """Channel calls each merchant has in flight in this worker, at most ``limit``: beside the
    rate limit, so one merchant's flood of (slow) payments holds at most ``limit`` of the
    worker's connections and loop turns, and the others' payments still get theirs. The
    surplus is refused at once with 429 RATE_LIMITED, before anything is recorded."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = max(limit, 1)
        self.metrics = metrics
        self._n: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, merchant_id: str) -> Iterator[None]:
        n = self._n.get(merchant_id, 0)
        if n >= self.limit:
            self.metrics.merchant_busy.labels(merchant_id).inc()
            raise RateLimited(f"this merchant already has {self.limit} payments in flight", retry_after=1)
        self._n[merchant_id] = n + 1
        try:
            yield
        finally:
            left = self._n[merchant_id] - 1
            if left:
                self._n[merchant_id] = left
            else:
                del self._n[merchant_id]


class Authenticator:
    def __init__(self, merchants: Merchants, nonces: NonceStore, limiter: RateLimiter, window: int, *,
                 metrics: Metrics, inflight: InFlight | None = None) -> None:
        self.inflight = inflight or InFlight(64, metrics)
        self.metrics = metrics
        self.merchants = merchants
        self.nonces = nonces
        self.limiter = limiter
        self.window = window

    async def authenticate(self, method: str, path_qs: str, headers: Any, body: bytes, *,
                           defer_nonce: bool = False) -> Merchant:
        """The merchant who signed the request, or Unauthenticated. ``defer_nonce``: everything but
        recording the nonce, which the caller must then do — with its write (Engine.create_payment's
        journal statement records it with the payment) or by ``claim`` — before it acts or answers."""
        mid = headers.get("X-Paycore-Merchant", "")
        ts = headers.get("X-Paycore-Timestamp", "")
        nonce = headers.get("X-Paycore-Nonce", "")
        sig = headers.get("X-Paycore-Signature", "")
        if not (mid and ts and nonce and sig):
            return self._fail("missing_headers", "missing authentication headers")
        # isascii: "²".isdigit() is True but int("²") raises
        if (not MERCHANT_RE.match(mid) or not NONCE_RE.match(nonce) or not (ts.isascii() and ts.isdigit())
                or len(ts) > 12):
            return self._fail("malformed", "malformed authentication headers")
        if abs(time.time() - int(ts)) > self.window:
            return self._fail("stale_timestamp", "timestamp outside the allowed window")
        merchant = await self.merchants.get(mid)
        if merchant is None:
            return self._fail("unknown_merchant", "unknown merchant or bad signature")
        # bytes, not str: compare_digest raises on non-ASCII str (a header may carry any octets)
        given = (sig.lower() if len(sig) == 64 else sig).encode("utf-8", "surrogateescape")
        used = self._signed_with(merchant, given, method, path_qs, ts, nonce, body)
        if used is None:
            # perhaps signed with a secret rotated in since this worker cached the merchant
            fresh = await self.merchants.get(mid, max_age=Merchants.REFRESH_AFTER)
            if fresh is not None and fresh is not merchant:
                merchant = fresh
                used = self._signed_with(merchant, given, method, path_qs, ts, nonce, body)
        if used is None:
            return self._fail("bad_signature", "unknown merchant or bad signature")
        if used:
            self.metrics.auth_previous_secret.labels(merchant.id).inc()
        if not merchant.active:
            return self._fail("disabled", "merchant disabled")
        try:
            self.limiter.check(merchant)
        except RateLimited:
            self.metrics.rate_limited.labels(merchant.id).inc()
            raise
        if not defer_nonce:
            await self.claim(mid, nonce)
        return merchant

    async def claim(self, merchant_id: str, nonce: str) -> None:
        """Record a request's nonce; Unauthenticated if it was already used (a replay)."""
        if not await self.nonces.fresh(merchant_id, nonce):
            self.replayed()

    def replayed(self):
        return self._fail("replay", "nonce already used")

    def nonce_expiry(self) -> datetime:
        return self.nonces.expiry()

    @staticmethod
    def _signed_with(merchant: Merchant, given: bytes, method: str, path_qs: str, ts: str, nonce: str,
                     body: bytes) -> int | None:
        """Which of the merchant's valid secrets made ``given``: 0 the current one, 1 the previous one
        (in its grace period), None neither. Every candidate is compared, each in constant time."""
        found = None
        for i, secret in enumerate(merchant.secrets(time.time())):
            expected = sign(secret.get_bytes(), method, path_qs, ts, nonce, body).encode()
            if hmac.compare_digest(expected, given) and found is None:
                found = i
        return found

    def _fail(self, reason: str, message: str):
        self.metrics.auth_failures.labels(reason).inc()
        raise Unauthenticated(message)


class PendingNonce:
    """A request's nonce that authentication left unrecorded (``defer_nonce``): the new payment's
    journal statement records it (``for_write``), or ``claim`` does before anything else is done
    or answered. Either way a replay answers 401 and changes nothing."""

    __slots__ = ("auth", "merchant_id", "value", "recorded")

    def __init__(self, auth: "Authenticator", merchant_id: str, value: str) -> None:
        self.auth = auth
        self.merchant_id = merchant_id
        self.value = value
        self.recorded = False

    def for_write(self) -> tuple[str, datetime] | None:
        """(nonce, expiry) for the journal change that records it; None once it is recorded."""
        return None if self.recorded else (self.value, self.auth.nonce_expiry())

    async def claim(self) -> None:
        if not self.recorded:
            self.recorded = True
            await self.auth.claim(self.merchant_id, self.value)

    def written(self) -> None:
        """The journal statement that carried it ran: the nonce is recorded."""
        self.recorded = True

    def replayed(self):
        self.recorded = True
        return self.auth.replayed()


def signed_headers(merchant_id: str, secret: str | bytes, method: str, path_qs: str, body: bytes = b"",
                   ts: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """Headers for a signed request: what a client does (tests, load tests, the README example)."""
    ts_s = str(int(time.time()) if ts is None else ts)
    nonce = nonce or os.urandom(12).hex()
    key = secret.encode() if isinstance(secret, str) else secret
    return {"X-Paycore-Merchant": merchant_id, "X-Paycore-Timestamp": ts_s, "X-Paycore-Nonce": nonce,
            "X-Paycore-Signature": sign(key, method, path_qs, ts_s, nonce, body),
            "Content-Type": "application/json"}


def dumps_compact(obj: Any) -> bytes:
    return orjson.dumps(obj)
