"""The relay: drains the outbox to Kafka, at least once, in seq order per payment.

One relay is active at a time across all paycore processes and nodes: the
one holding a Postgres advisory lock on its own connection (if its process
dies, the connection closes and another takes over). A single reader keeps
per-payment order trivially: outbox ids of one payment grow with its seq
(a payment's next change cannot commit before the previous one, see the
journal's seq guard), rows are published in id order and deleted only after
Kafka acknowledged them. A crash between publish and delete re-publishes:
consumers dedupe on ``event_id``.

A broker outage: the batch fails or times out, the producer is dropped
(with whatever it still buffered), and the relay backs off exponentially up
to ``relay_backoff_max`` seconds, then starts again from the oldest row.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from paycore.metrics import Metrics
from paycore.tasks import Loop
from paycore.config import Config

log = logging.getLogger("paycore.relay")
RELAY_LOCK = 7261002


def make_producer(cfg: Config) -> AIOKafkaProducer:
    k = cfg.kafka
    return AIOKafkaProducer(
        bootstrap_servers=k.bootstrap, acks="all", enable_idempotence=k.idempotence,
        compression_type=k.compression or None, linger_ms=k.linger_ms, max_batch_size=512 * 1024,
        request_timeout_ms=int(k.send_timeout * 1000), retry_backoff_ms=200,
        client_id="paycore-relay",
    )


async def ensure_topic(cfg: Config) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        if cfg.kafka.topic not in await admin.list_topics():
            try:
                await admin.create_topics([NewTopic(cfg.kafka.topic, cfg.kafka.partitions, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


class Relay(Loop):
    """The outbox's one publisher: whoever holds the advisory lock drains the
    outbox to Kafka in id order; the others wait for the lock."""
    name = "relay"

    def __init__(self, cfg: Config, *, metrics: Metrics) -> None:
        super().__init__(interval=1.0, backoff_min=0.2, backoff_max=cfg.journal.relay_backoff_max)
        self.cfg = cfg
        self.metrics = metrics
        self.batch = cfg.kafka.batch_max
        self.idle = cfg.journal.relay_interval_ms / 1000
        self.is_leader = False
        self.published = 0

    async def step(self) -> float:
        """One leadership term: take the lock (or wait for it), then drain until stopped or failed."""
        conn: asyncpg.Connection | None = None
        producer: AIOKafkaProducer | None = None
        try:
            conn = await asyncpg.connect(self.cfg.database.url, timeout=self.cfg.database.connect_timeout)
            if not await conn.fetchval("select pg_try_advisory_lock($1)", RELAY_LOCK):
                return 1.0
            self.is_leader = True
            await ensure_topic(self.cfg)
            producer = make_producer(self.cfg)
            await asyncio.wait_for(producer.start(), self.cfg.kafka.send_timeout)
            await self._drain(conn, producer)
            return 0.0
        finally:
            self.is_leader = False
            if producer is not None:
                await _drop_producer(producer)
            if conn is not None:
                conn.terminate()

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, (KafkaError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                                OSError))

    def failed(self, exc: BaseException) -> None:
        kind = ("kafka" if isinstance(exc, (KafkaError, asyncio.TimeoutError)) else
                "database" if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)) else "other")
        self.metrics.relay_errors.labels(kind).inc()

    async def _drain(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        topic = self.cfg.kafka.topic
        last_depth = 0.0
        while not self.stopping:
            rows = await conn.fetch(
                "select id, payment_id, payload, created_at from outbox order by id limit $1", self.batch)
            now = time.monotonic()
            if not rows:   # the select just saw it empty: no count needed on every idle poll
                self.metrics.outbox_depth.set(0)
                last_depth = now
                await asyncio.sleep(self.idle)
                continue
            if now - last_depth > 2.0:
                self.metrics.outbox_depth.set(await conn.fetchval(
                    "select count(*) from (select 1 from outbox limit 1000000) o"))
                last_depth = now
            futures = await _send_batches(producer, topic, rows)
            await asyncio.wait_for(asyncio.gather(*futures), self.cfg.kafka.send_timeout)
            await conn.execute("delete from outbox where id = any($1::bigint[])", [r["id"] for r in rows])
            at = datetime.now(timezone.utc)
            for r in rows:
                self.metrics.relay_lag.observe((at - r["created_at"]).total_seconds())
            self.metrics.events_published.inc(len(rows))
            self.published += len(rows)
            if len(rows) < self.batch:
                # caught up: let the next batch gather for one poll interval instead of
                # paying a select, a produce round trip and a delete for a handful of rows
                await asyncio.sleep(self.idle)


async def _send_batches(producer: AIOKafkaProducer, topic: str, rows) -> list[asyncio.Future]:
    """Queue ``rows`` (in outbox order) as one record batch per partition, chosen
    by the producer's own partitioner on the payment id exactly as ``send`` would,
    instead of one ``send`` (a coroutine, a future, a metadata check) per event.
    Per partition the batches go out in order, one at a time, as sends do."""
    await producer.partitions_for(topic)  # metadata known before partitioning
    futures: list[asyncio.Future] = []
    open_batches: dict[int, object] = {}
    for r in rows:
        key, value = r["payment_id"].encode(), r["payload"]
        part = producer._partition(topic, None, None, None, key, value)
        batch = open_batches.get(part)
        if batch is None:
            batch = open_batches[part] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: ship it, open the next
            futures.append(await producer.send_batch(batch, topic, partition=part))
            batch = open_batches[part] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    for part, batch in open_batches.items():
        futures.append(await producer.send_batch(batch, topic, partition=part))
    return futures


async def _drop_producer(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 2.0)
    except Exception:  # it is being abandoned; what it buffered is re-sent from the outbox
        pass
