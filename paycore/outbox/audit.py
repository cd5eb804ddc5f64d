"""``paycore audit``: does Kafka hold every event Postgres holds, in order?

Postgres is the source of truth: its ``events`` table is what happened. The
audit reads those events, waits (``--wait``) for the relay to drain the
outbox, then reads the whole topic from the beginning by direct partition
assignment (no consumer group: it moves no one's offsets) up to the end
offsets it found, and compares by ``event_id``:

* missing      — in Postgres, not in Kafka (a lost event; those still in the
                 outbox after the wait are counted here too, and also shown as
                 ``pending``);
* duplicated   — extra copies in Kafka (allowed: delivery is at least once and
                 consumers dedupe on ``event_id``; reported, not an error);
* out of order — after dropping duplicates, a payment whose ``seq`` goes
                 backwards in its partition (consumers would apply an older
                 state over a newer one);
* unknown      — in Kafka, not in Postgres (e.g. another environment's events).

Exit status 1 when anything is missing or out of order, 2 when a side could
not be read. ``--since`` limits the audit to events that occurred after a time.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

SAMPLE = 20   # ids listed per problem


@dataclass
class AuditReport:
    postgres_events: int = 0
    kafka_messages: int = 0
    kafka_events: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unknown: int = 0
    pending: int = 0
    wrong_key: int = 0
    missing_ids: list[str] = field(default_factory=list)
    duplicated_ids: list[str] = field(default_factory=list)
    out_of_order_payments: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.out_of_order == 0 and self.wrong_key == 0

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), ok=self.ok)

    def table(self) -> str:
        rows = [("events in postgres", self.postgres_events), ("messages in kafka", self.kafka_messages),
                ("distinct events in kafka", self.kafka_events), ("missing", self.missing),
                ("  of which still in the outbox", self.pending), ("duplicated (extra copies)", self.duplicated),
                ("out of order (payments)", self.out_of_order), ("keyed by the wrong payment", self.wrong_key),
                ("unknown to postgres", self.unknown)]
        width = max(len(r[0]) for r in rows)
        lines = [f"{name.ljust(width)}  {value:>10}" for name, value in rows]
        for title, ids in (("missing", self.missing_ids), ("duplicated", self.duplicated_ids),
                           ("out of order", self.out_of_order_payments)):
            if ids:
                lines.append(f"{title}: " + ", ".join(ids[:SAMPLE]) + (" …" if len(ids) > SAMPLE else ""))
        lines.append("OK" if self.ok else "FAILED: events missing or out of order")
        return "\n".join(lines)


async def postgres_events(dsn: str, since: datetime | None = None) -> dict[str, tuple[str, int]]:
    """event_id → (payment_id, seq)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if since is None:
            rows = await conn.fetch("select event_id, payment_id, seq from events")
        else:
            rows = await conn.fetch("select event_id, payment_id, seq from events where occurred_at >= $1", since)
        return {r["event_id"]: (r["payment_id"], r["seq"]) for r in rows}
    finally:
        await conn.close()


async def outbox_ids(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return {r["event_id"] for r in await conn.fetch("select event_id from outbox")}
    finally:
        await conn.close()


async def wait_for_outbox(dsn: str, seconds: float) -> int:
    """Wait until the relay has drained the outbox (or ``seconds``); returns what is left."""
    deadline = time.monotonic() + seconds
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        while True:
            left = await conn.fetchval("select count(*) from outbox")
            if left == 0 or time.monotonic() >= deadline:
                return left
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def kafka_events(bootstrap: str, topic: str, timeout: float = 60.0,
                       settle: float = 1.5) -> list[tuple[int, str | None, dict]]:
    """Every message of ``topic``, in offset order per partition: (partition, key, event).

    Reads to the end offsets the broker reports, then on until nothing new came for ``settle``
    seconds: the embedded dev broker (Tansu) has been seen reporting end offsets below records it
    already serves, after connections to it were cut."""

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=10000)
    await asyncio.wait_for(consumer.start(), timeout)
    try:
        parts = None
        for _ in range(50):
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, str | None, dict]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_since = loop.time()
        while True:
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f}s")
            batch = await consumer.getmany(*tps, timeout_ms=300)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append((tp.partition, m.key.decode() if m.key else None, orjson.loads(m.value)))
            if any(batch.values()):
                quiet_since = loop.time()
                continue
            reached = all([await consumer.position(tp) >= ends[tp] for tp in tps])
            if reached and loop.time() - quiet_since >= settle:
                return out
    finally:
        await consumer.stop()


def compare(pg: dict[str, tuple[str, int]], kafka: list[tuple[int, str | None, dict]],
            pending: set[str] | None = None) -> AuditReport:
    rep = AuditReport(postgres_events=len(pg), kafka_messages=len(kafka))
    copies = Counter(ev.get("event_id") for _, _, ev in kafka)
    rep.kafka_events = len(copies)
    rep.duplicated = sum(n - 1 for n in copies.values() if n > 1)
    rep.duplicated_ids = sorted(e for e, n in copies.items() if n > 1)[:SAMPLE]
    missing = sorted(e for e in pg if e not in copies)
    rep.missing, rep.missing_ids = len(missing), missing[:SAMPLE]
    rep.pending = len(set(missing) & (pending or set()))
    rep.unknown = sum(1 for e in copies if e not in pg)
    # per payment, in the order a consumer of its partition reads: first copies only
    seen: set[str] = set()
    last: dict[str, int] = {}
    bad: set[str] = set()
    for _, key, ev in kafka:
        eid = ev.get("event_id")
        if eid in seen:
            continue
        seen.add(eid)
        # the key is the stream's id: the payment's (a payout is its own stream; for settlement.closed,
        # the settlement's key), as events.payment_id holds it
        pid = pg[eid][0] if eid in pg else (ev.get("payment") or ev.get("payout") or {}).get("id")
        if key != pid:
            rep.wrong_key += 1
        seq = int(ev.get("seq", 0))
        if pid in last and seq < last[pid]:
            bad.add(pid)
        last[pid] = max(seq, last.get(pid, 0))
    rep.out_of_order = len(bad)
    rep.out_of_order_payments = sorted(bad)[:SAMPLE]
    return rep


async def audit(dsn: str, bootstrap: str, topic: str, *, wait: float = 30.0, since: datetime | None = None,
                kafka_timeout: float = 60.0) -> AuditReport:
    # Postgres first: whatever it holds now must be in Kafka once the outbox has drained
    pg = await postgres_events(dsn, since)
    await wait_for_outbox(dsn, wait)
    pending = await outbox_ids(dsn)
    kafka = await kafka_events(bootstrap, topic, kafka_timeout)
    return compare(pg, kafka, pending)
