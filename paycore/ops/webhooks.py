"""Merchant webhooks: signed, persisted, retried with backoff.

The journal writes a ``webhooks`` row in the same transaction as every final
event of a payment with a ``notify_url``; this dispatcher (one per process,
rows claimed with ``skip locked`` and leased, so several processes share the
work and a process that dies mid-delivery leaves rows that become due again)
POSTs the event JSON with
``X-Paycore-Signature: t=<unix>,kid=<key id>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
until the merchant answers 2xx. ``kid`` names the merchant's current secret;
while a rotated-out secret is still in its grace period a second ``v1`` made
with it follows, so a merchant that has not deployed the new secret yet still
verifies (api.md's ``t=…,v1=…`` holds for a verifier that ignores unknown
elements and accepts any matching ``v1``). Attempts follow ``SCHEDULE`` (10 attempts
over about 2.5 hours; ``[webhooks] schedule`` in the config overrides it);
then the row is FAILED and ``paycore webhooks replay`` gives it a fresh
schedule. ``paycore webhooks list`` shows rows by status or payment.

Delivery is at least once: a merchant dedupes on ``event_id`` (also sent as
``X-Paycore-Event-Id``).

Destinations (paycore.destinations): https only unless ``[webhooks]
allow_http``; the address connected to must be public unless
``allow_private`` (dev and tests). The check runs on the socket's address
right before it connects (aiohttp's ``socket_factory``), so a name that
resolves differently later (DNS rebinding) gains nothing. Redirects are never
followed (a 3xx is a failed attempt). With ``[webhooks] proxy`` every
delivery goes through that egress proxy; paycore then resolves the
destination itself, checks it, and has the proxy connect to the checked
address (the name stays in ``Host`` and in TLS), so the proxy cannot be sent
to an address paycore refused. A refused destination is a failed attempt
with ``last_error`` saying why, counted in
``paycore_webhook_refused_total{reason}``, and retried on the schedule like
any other failure (each attempt is checked afresh).
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
from yarl import URL

from paycore.destinations import DestinationRefused, address_problem
from paycore.metrics import Metrics
from paycore.tasks import Loop
from paycore.merchants.auth import SecretBox, key_id
from paycore.core.models import now

log = logging.getLogger("paycore.webhooks")

#: seconds to wait after attempt n (1-based) failed: 10 attempts over 2 h 43 min
SCHEDULE = (5, 15, 60, 180, 600, 900, 1800, 2400, 3600)
MAX_ATTEMPTS = len(SCHEDULE) + 1
STATUSES = ("PENDING", "DELIVERED", "FAILED")


def signature_header(secret: bytes, body: bytes, ts: int | None = None, *, kid: str | None = None,
                     previous: bytes | None = None) -> str:
    """``t=<unix>[,kid=<key id>],v1=<mac with secret>[,v1=<mac with previous>]``."""
    t = int(time.time()) if ts is None else ts
    signed = f"{t}.".encode() + body
    macs = [hmac.new(key, signed, hashlib.sha256).hexdigest() for key in (secret, previous) if key]
    return f"t={t}," + (f"kid={kid}," if kid else "") + ",".join(f"v1={m}" for m in macs)


def verify_signature(secret: bytes, body: bytes, header: str, tolerance: float = 300.0,
                     at: float | None = None) -> bool:
    """What a merchant does on receipt (and what the tests do): recompute the MAC over
    ``"<t>.<body>"``, compare in constant time, refuse a stale ``t``."""
    try:
        pairs = [p.split("=", 1) for p in header.split(",")]
        t = int(next(v for k, v in pairs if k == "t"))
        given = [v for k, v in pairs if k == "v1"]   # several during a secret's grace period
    except (StopIteration, ValueError):
        return False
    if abs((time.time() if at is None else at) - t) > tolerance:
        return False
    want = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest().encode()
    return any([hmac.compare_digest(want, g.encode("utf-8", "surrogateescape")) for g in given])


def _public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket_factory: called with the very address about to be connected to."""
    family, type_, proto, _, sockaddr = addr_info
    why = address_problem(sockaddr[0])
    if why:
        raise DestinationRefused(f"{sockaddr[0]} is {why}")
    return socket.socket(family=family, type=type_, proto=proto)


def refusal_of(exc: BaseException | None) -> tuple[str, str] | None:
    """(kind, why) if paycore refused the destination, which is what ``exc`` or what caused it says."""
    for _ in range(5):
        if exc is None:
            return None
        if isinstance(exc, DestinationRefused):
            return exc.kind, exc.reason
        os_error = getattr(exc, "os_error", None)
        text = (os_error.strerror or str(os_error)) if isinstance(os_error, OSError) else ""
        if _REFUSED in text:
            # every address of a name refused, with different reasons: aiohappyeyeballs joins the messages
            return "address", text.removeprefix("Multiple exceptions: ").replace(f"[Errno {errno.EACCES}] ", "") \
                .replace(_REFUSED, "")
        exc = exc.__cause__ or os_error
    return None


_REFUSED = "destination refused: "


#: what a delivery needs of a webhook row and its merchant (the previous secret only while it is valid)
ROW_SQL = ("select w.id, w.event_id, w.url, w.payload, w.attempts, w.merchant_id, m.secret_enc, m.secret_version, "
           "case when m.prev_secret_expires_at > now() then m.prev_secret_enc end as prev_secret_enc "
           "from webhooks w join merchants m on m.id = w.merchant_id")


class Dispatcher(Loop):
    """Delivers due merchant webhooks, signed, on the retry schedule, to allowed destinations only."""
    name = "webhooks"

    def __init__(self, pool: asyncpg.Pool, box: SecretBox, interval: float = 0.5, batch: int = 100,
                 timeout: float = 5.0, schedule: tuple[float, ...] = SCHEDULE, *, metrics: Metrics,
                 allow_http: bool = False, allow_private: bool = False, proxy: str = "") -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.box = box
        self.metrics = metrics
        self.batch = batch
        self.timeout = timeout
        self.schedule = tuple(schedule) or SCHEDULE
        self.allow_http = allow_http
        self.allow_private = allow_private
        self.proxy = proxy or None
        # a claimed row is due again after this if its process died mid-delivery
        self.lease = 2 * timeout + 5
        self._session: aiohttp.ClientSession | None = None

    async def setup(self) -> None:
        # direct: every address is checked as its socket is made; through a proxy the socket goes to the
        # proxy (the operator's), and the destination is checked and pinned in _pinned instead
        guard = None if self.allow_private or self.proxy else _public_socket
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                              connector=aiohttp.TCPConnector(socket_factory=guard))

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
                rows = await conn.fetch(f"{ROW_SQL} where w.status = 'PENDING' and w.next_attempt_at <= now() "
                                        "order by w.next_attempt_at limit $1 for update of w skip locked", self.batch)
                if rows:
                    await conn.execute("update webhooks set next_attempt_at = now() + make_interval(secs => $2) "
                                       "where id = any($1::bigint[])", [r["id"] for r in rows], self.lease)
        if rows:
            await asyncio.gather(*(self.deliver(r) for r in rows))
        return len(rows)

    def signature(self, row: asyncpg.Record, body: bytes) -> str:
        """Signed with the current secret under its key id, and also with the previous one while it is in
        its grace period (the query leaves it out once expired)."""
        mid = row["merchant_id"]
        secret = self.box.open(mid, row["secret_enc"]).get_bytes()
        prev = self.box.open(mid, row["prev_secret_enc"]).get_bytes() if row["prev_secret_enc"] else None
        return signature_header(secret, body, kid=key_id(row["secret_version"]), previous=prev)

    async def _pinned(self, url: URL, headers: dict[str, str]) -> tuple[URL, str | None]:
        """Through the proxy: resolve the destination here, keep its public addresses, and hand the proxy
        the first of them (Host and the TLS name stay the merchant's), so what the proxy connects to is
        what was checked. Returns the URL to request and the TLS server name."""
        host = url.raw_host or ""
        try:
            ipaddress.ip_address(host)
            literal = True
        except ValueError:
            literal = False
        if literal:
            why = address_problem(host)
            if why:
                raise DestinationRefused(f"{host} is {why}")
            return url, None
        infos = await asyncio.get_running_loop().getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(i[4][0] for i in infos))
        public = [a for a in addresses if not address_problem(a)]
        if not public:
            raise DestinationRefused("; ".join(f"{host} resolves to {a}, {address_problem(a)}" for a in addresses))
        headers["Host"] = host if url.is_default_port() else f"{host}:{url.port}"
        return url.with_host(public[0]), host if url.scheme == "https" else None

    async def deliver(self, row: asyncpg.Record) -> None:
        body = bytes(row["payload"])
        attempts = row["attempts"] + 1
        headers = {"Content-Type": "application/json", "X-Paycore-Signature": self.signature(row, body),
                   "X-Paycore-Event-Id": row["event_id"], "X-Paycore-Delivery-Attempt": str(attempts),
                   "User-Agent": "paycore-webhooks/1"}
        status, error = None, None
        assert self._session is not None
        t0 = time.perf_counter()
        try:
            url = URL(row["url"])
            if url.scheme != "https" and not (self.allow_http and url.scheme == "http"):
                raise DestinationRefused(f"{url.scheme} is not allowed (https only)", kind="scheme")
            server_hostname = None
            if self.proxy and not self.allow_private:
                url, server_hostname = await self._pinned(url, headers)
            # never follow a redirect: a 3xx could point anywhere, inside the network included
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False, proxy=self.proxy,
                                          server_hostname=server_hostname) as resp:
                status = resp.status
                await resp.read()
            if 300 <= status < 400:
                error = "redirect not followed"
                self.metrics.webhook_refused.labels("redirect").inc()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as e:
            refused = refusal_of(e)
            if refused is not None:
                kind, why = refused
                error = f"destination refused: {why}"[:500]
                self.metrics.webhook_refused.labels(kind).inc()
                log.warning("webhook %s for merchant %s not sent: %s", row["event_id"], row["merchant_id"], error)
            else:
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
