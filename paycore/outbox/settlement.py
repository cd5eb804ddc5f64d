"""``paycore consume settlement``: daily settlement totals from the journal topic.

A Kafka consumer group on ``paycore.payments`` (run as many instances as
there are partitions to share; each partition has one owner at a time). Per
merchant, channel and UTC day of the event it keeps what money moved:
``payment.succeeded`` (taken), ``payment.reversed`` of a payment that had
been paid (returned), ``refund.succeeded`` (returned). Other events change
no money and are skipped.

Exactly-once effect over an at-least-once stream: each partition's batch is
applied in one Postgres transaction that also inserts the events' ids into
``settlement_events`` (``on conflict do nothing``); only events whose id was
new change the totals. Offsets are committed to Kafka *after* that
transaction commits, so a crash between the two re-delivers events that the
dedup set then skips, and a crash before it loses nothing. A commit refused
because the group rebalanced is harmless for the same reason. The dedup set
is pruned after ``--dedup-days`` (keep it longer than the topic's retention
of anything that could be re-read).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import date, datetime, timezone
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from paycore.outbox.relay import ensure_topic

log = logging.getLogger("paycore.consumer")

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


#: event type → (which counter pair it moves); payment.reversed only if the payment had been paid
_MOVES = {"payment.succeeded": "payments", "payment.reversed": "reversed", "refund.succeeded": "refunds"}
_COLS = ("payments_count", "payments_amount", "reversed_count", "reversed_amount", "refunds_count",
         "refunds_amount")
_UPSERT = (
    f"insert into settlement_totals (merchant_id, channel, day, {', '.join(_COLS)}) "
    "select * from unnest($1::text[], $2::text[], $3::date[], $4::bigint[], $5::bigint[], $6::bigint[], "
    "$7::bigint[], $8::bigint[], $9::bigint[]) "
    "on conflict (merchant_id, channel, day) do update set "
    + ", ".join(f"{c} = settlement_totals.{c} + excluded.{c}" for c in _COLS)
    + ", updated_at = now()")


def movement(ev: dict[str, Any]) -> tuple[tuple[str, str, date], str, int] | None:
    """((merchant, channel, day), counter, amount) for an event that moves money, else None."""
    kind = _MOVES.get(ev.get("type", ""))
    if kind is None:
        return None
    p = ev["payment"]
    if kind == "reversed" and not p.get("paid_at"):
        return None   # reversed before any money was taken
    amount = ev["refund"]["amount"] if kind == "refunds" else p["amount"]
    day = datetime.fromisoformat(ev["occurred_at"]).astimezone(timezone.utc).date()
    return (p["merchant_id"], p["channel"], day), kind, int(amount)


async def apply(pool: asyncpg.Pool, values: list[bytes], metrics: SettlementMetrics) -> tuple[int, int]:
    """Apply one partition batch in one transaction; returns (applied, duplicates)."""
    moves: list[tuple[str, str, str, tuple[tuple[str, str, date], str, int]]] = []
    for raw in values:
        try:
            ev = orjson.loads(raw)
            mv = movement(ev)
            if mv is None:
                metrics.events.labels("skipped").inc()
                continue
            moves.append((str(ev["event_id"]), str(ev["payment"]["id"]), str(ev["type"]), mv))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            # a poison message must not stop the partition: counted, logged (without its content), skipped
            metrics.events.labels("malformed").inc()
            log.warning("settlement: skipping a malformed event")
    if not moves:
        return 0, 0
    async with pool.acquire() as conn:
        async with conn.transaction():
            rows = await conn.fetch(
                "insert into settlement_events (event_id, payment_id, type) "
                "select * from unnest($1::text[], $2::text[], $3::text[]) on conflict do nothing returning event_id",
                [m[0] for m in moves], [m[1] for m in moves], [m[2] for m in moves])
            new = {r[0] for r in rows}
            totals: dict[tuple[str, str, date], list[int]] = defaultdict(lambda: [0] * 6)
            applied = 0
            for event_id, _, _, (key, kind, amount) in moves:
                if event_id not in new:
                    continue
                new.discard(event_id)   # the same event twice in one batch counts once
                i = ("payments", "reversed", "refunds").index(kind) * 2
                t = totals[key]
                t[i] += 1
                t[i + 1] += amount
                applied += 1
            if totals:
                keys = list(totals)
                await conn.execute(_UPSERT, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                                   *([totals[k][i] for k in keys] for i in range(6)))
    dup = len(moves) - applied
    metrics.events.labels("applied").inc(applied)
    if dup:
        metrics.events.labels("duplicate").inc(dup)
    return applied, dup


class SettlementConsumer:
    def __init__(self, cfg: Any, pool: asyncpg.Pool, group: str, *, batch: int = 500,
                 session_timeout_ms: int = 10000, dedup_days: int = 14,
                 metrics: SettlementMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or SettlementMetrics()
        self.pool = pool
        self.group = group
        self.batch = batch
        self.session_timeout_ms = session_timeout_ms
        self.dedup_days = dedup_days
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
        last_prune = 0.0
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
                    if time.monotonic() - last_prune > 3600:
                        await self.pool.execute("delete from settlement_events where consumed_at < now() - "
                                                "make_interval(days => $1)", self.dedup_days)
                        last_prune = time.monotonic()
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
        applied, dup = await apply(self.pool, [m.value for m in msgs], self.metrics)
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
