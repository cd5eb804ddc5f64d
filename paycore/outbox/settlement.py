"""``paycore consume settlement``: settlement lines per merchant and business day.

A Kafka consumer group on ``paycore.payments`` (run as many instances as
there are partitions to share; each partition has one owner at a time).
Each event that moved a merchant's money becomes one line of that
merchant's statement (docs/settlement.md): ``payment.succeeded`` (and
``payment.late_succeeded``) a payment line with the fee fixed on the
payment; ``payment.reversed`` of a payment that had been paid, and
``refund.succeeded``, a refund line that returns the fee by the channel's
policy. Other events change no money and are skipped.

The line's day is the business day (``[settlement] timezone``) of the
event. If that day is already closed, the line goes to the next open day as
an ``adjustment`` that names its original day: a closed statement is never
rewritten. Closing (statements.close) takes an exclusive advisory lock that
every batch here takes shared, so a line is either in the closed statement
or an adjustment, never lost between the two.

Exactly-once effect over an at-least-once stream: the line's primary key is
the event id (``on conflict do nothing``), each partition's batch is one
transaction, and offsets are committed to Kafka *after* it commits, so a
crash between the two re-delivers events that then change nothing, and a
crash before it loses nothing. A commit refused because the group
rebalanced is harmless for the same reason.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from paycore.bizday import Calendar
from paycore.config import SettlementConfig
from paycore.core.fees import refund_fee
from paycore.outbox.relay import ensure_topic

log = logging.getLogger("paycore.consumer")

#: taken shared by every batch that writes lines, exclusively by a close
CLOSE_LOCK = 0x70617963_6C6F7365 & 0x7FFFFFFFFFFFFFFF

class SettlementMetrics:
    """The consumer's own collectors (its process serves them on --metrics-port)."""

    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry(auto_describe=True)
        self.events = Counter("paycore_settlement_events_total", "Journal events seen by the settlement consumer",
                              ["result"], registry=reg)   # applied | duplicate | skipped | malformed
        self.lag = Gauge("paycore_settlement_lag_seconds", "Age of the newest event applied, when it was applied",
                         registry=reg)
        self.batch = Histogram("paycore_settlement_batch_seconds",
                               "One partition batch: DB transaction and offset commit",
                               buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=reg)
        self.commit_failures = Counter("paycore_settlement_commit_failures_total",
                                       "Offset commits refused (rebalance); the events are re-read and deduplicated",
                                       registry=reg)


@dataclass(frozen=True, slots=True)
class Line:
    """One money movement of a merchant, from one journal event (signed: see migration 008)."""
    event_id: str
    merchant_id: str
    day: date                   # the business day of the event
    kind: str                   # payment | refund (an adjustment is decided when it is written)
    type: str
    id: str
    payment_id: str
    merchant_order_no: str
    channel: str
    method: str
    amount: int
    fee: int
    occurred_at: datetime


_PAID = ("payment.succeeded", "payment.late_succeeded")
_MONEY = frozenset(_PAID + ("payment.reversed", "refund.succeeded"))


def line_of(ev: dict[str, Any], cal: Calendar, settings: SettlementConfig) -> Line | None:
    """The statement line of a journal event, or None if it moved no money."""
    etype = ev.get("type", "")
    if etype not in _MONEY:
        return None
    p = ev["payment"]
    amount, fee = int(p["amount"]), int(p.get("fee") or 0)
    if etype == "payment.reversed":
        if not p.get("paid_at"):
            return None   # reversed before any money was taken
        kind, ref, moved, fee_moved = "refund", p["id"], -amount, -fee   # a reversal takes no fee
    elif etype == "refund.succeeded":
        r = ev["refund"]
        refunded = int(r["amount"])
        after = int(p["refunded_amount"])
        back = 0 if settings.fee_refund_policy(p["channel"]) == "kept" else \
            refund_fee(fee, amount, after - refunded, after)
        kind, ref, moved, fee_moved = "refund", str(r["id"]), -refunded, -back
    else:
        kind, ref, moved, fee_moved = "payment", p["id"], amount, fee
    at = datetime.fromisoformat(ev["occurred_at"])
    return Line(event_id=str(ev["event_id"]), merchant_id=str(p["merchant_id"]), day=cal.day_of(at), kind=kind,
                type=etype, id=ref, payment_id=str(p["id"]), merchant_order_no=str(p["merchant_order_no"]),
                channel=str(p["channel"]), method=str(p["method"]), amount=moved, fee=fee_moved, occurred_at=at)


def next_open_day(day: date, closed: set[date]) -> date:
    d = day + timedelta(days=1)
    while d in closed:
        d += timedelta(days=1)
    return d


_INSERT = (
    "insert into settlement_lines (event_id, merchant_id, day, original_date, kind, type, id, payment_id, "
    "merchant_order_no, channel, method, amount, fee, net, occurred_at) "
    "select * from unnest($1::text[], $2::text[], $3::date[], $4::date[], $5::text[], $6::text[], $7::text[], "
    "$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[], "
    "$15::timestamptz[]) on conflict (event_id) do nothing returning event_id")


async def write_lines(conn: Any, lines: list[Line]) -> int:
    """Insert ``lines`` (in a transaction of the caller's); returns how many were new."""
    if not lines:
        return 0
    await conn.execute("select pg_advisory_xact_lock_shared($1)", CLOSE_LOCK)
    closed = {r[0] for r in await conn.fetch("select day from settlement_closes where day >= $1",
                                             min(ln.day for ln in lines))}
    rows: list[tuple] = []
    seen: set[str] = set()
    for ln in lines:
        if ln.event_id in seen:
            continue   # the same event twice in one batch counts once
        seen.add(ln.event_id)
        if ln.day in closed:
            day, original, kind = next_open_day(ln.day, closed), ln.day, "adjustment"
        else:
            day, original, kind = ln.day, None, ln.kind
        rows.append((ln.event_id, ln.merchant_id, day, original, kind, ln.type, ln.id, ln.payment_id,
                     ln.merchant_order_no, ln.channel, ln.method, ln.amount, ln.fee, ln.amount - ln.fee,
                     ln.occurred_at))
    cols = list(zip(*rows))
    new = await conn.fetch(_INSERT, *(list(c) for c in cols))
    return len(new)


async def apply(pool: asyncpg.Pool, values: list[bytes], metrics: SettlementMetrics, cal: Calendar,
                settings: SettlementConfig) -> tuple[int, int]:
    """Apply one partition batch in one transaction; returns (applied, duplicates)."""
    lines: list[Line] = []
    for raw in values:
        try:
            ln = line_of(orjson.loads(raw), cal, settings)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            # a poison message must not stop the partition: counted, logged (without its content), skipped
            metrics.events.labels("malformed").inc()
            log.warning("settlement: skipping a malformed event")
            continue
        if ln is None:
            metrics.events.labels("skipped").inc()
        else:
            lines.append(ln)
    if not lines:
        return 0, 0
    async with pool.acquire() as conn:
        async with conn.transaction():
            applied = await write_lines(conn, lines)
    dup = len(lines) - applied
    metrics.events.labels("applied").inc(applied)
    if dup:
        metrics.events.labels("duplicate").inc(dup)
    return applied, dup


class SettlementConsumer:
    def __init__(self, cfg: Any, pool: asyncpg.Pool, group: str, *, batch: int = 500,
                 session_timeout_ms: int = 10000, metrics: SettlementMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or SettlementMetrics()
        self.pool = pool
        self.group = group
        self.batch = batch
        self.session_timeout_ms = session_timeout_ms
        self.calendar = cfg.settlement.calendar()
        self.applied = 0
        self.duplicates = 0

    def _consumer(self):
        k = self.cfg.kafka
        return AIOKafkaConsumer(
            k.topic, bootstrap_servers=k.bootstrap, group_id=self.group, client_id="paycore-settlement",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self.batch,
            session_timeout_ms=self.session_timeout_ms, heartbeat_interval_ms=max(self.session_timeout_ms // 3, 100),
            request_timeout_ms=max(self.session_timeout_ms + 5000, 15000))

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            consumer = None
            try:
                await ensure_topic(self.cfg)
                consumer = self._consumer()
                await consumer.start()
                log.info("settlement consumer joined group %s", self.group)
                backoff = 0.5
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=self.batch)
                    for tp, msgs in batches.items():
                        await self._one(consumer, tp, msgs)
            except asyncio.CancelledError:
                raise
            except (KafkaError, asyncio.TimeoutError, OSError) as e:
                log.warning("settlement consumer: broker trouble (%s), again in %.1fs", type(e).__name__, backoff)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("settlement consumer: database trouble (%s), again in %.1fs", type(e).__name__, backoff)
            finally:
                if consumer is not None:
                    try:
                        await asyncio.wait_for(consumer.stop(), 10)
                    except Exception:   # leaving anyway; uncommitted events are re-read and deduplicated
                        pass
            if not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, 10.0)

    async def _one(self, consumer: Any, tp: Any, msgs: list[Any]) -> None:
        if not msgs:
            return
        t0 = time.perf_counter()
        applied, dup = await apply(self.pool, [m.value for m in msgs], self.metrics, self.calendar,
                                   self.cfg.settlement)
        self.applied += applied
        self.duplicates += dup
        try:
            await consumer.commit({tp: msgs[-1].offset + 1})
        except (CommitFailedError, IllegalStateError) as e:
            self.metrics.commit_failures.inc()
            log.info("settlement consumer: offset commit refused (%s); the batch will be re-read", type(e).__name__)
        except KafkaError as e:
            self.metrics.commit_failures.inc()
            log.warning("settlement consumer: offset commit failed (%s)", type(e).__name__)
        self.metrics.batch.observe(time.perf_counter() - t0)
        self.metrics.lag.set(max(time.time() - msgs[-1].timestamp / 1000, 0.0))
