"""The relay: drains the outbox to Kafka, at least once, in seq order per payment.

One relay is active at a time across all paycore processes and nodes: the
one holding a Postgres advisory lock on its own connection (if its process
dies, the connection closes and another takes over). A single reader keeps
per-payment order trivially: outbox ids of one payment grow with its seq
(a payment's next change cannot commit before the previous one, see the
journal's seq guard), rows are published in id order and deleted only after
Kafka acknowledged them. A crash between publish and delete re-publishes:
consumers dedupe on ``event_id``.

Leadership has a bounded takeover, whatever happens to the leader: its lock
session is opened with ``idle_session_timeout`` = ``relay_lease`` (and TCP
keepalives and a user timeout on the server side), and the leader runs a
query on it at least every third of that (polls, and a heartbeat while it
waits for Kafka). A leader that is frozen (SIGSTOP, a VM pause), cut off or
gone stops querying, so Postgres ends its session within about ``relay_lease``
seconds, the lock is free and another process takes over — not when the
kernel gives up on a dead peer hours later. A frozen leader that thaws finds
its session gone at its next query and steps down; before every batch it also
checks that the query that read the batch did not span a freeze (a monotonic
clock jump beyond half the lease), so it does not publish rows the new leader
may already have published after newer ones. (A freeze in the microseconds
between that check and the producer's write cannot be excluded without
broker-side fencing; it would re-publish a batch, which consumers drop by
``event_id``.)

A broker outage: the batch fails or times out, the producer is dropped
(with whatever it still buffered), and the relay backs off exponentially up
to ``relay_backoff_max`` seconds, then starts again from the oldest row.

The outbox is a queue: rows enter at its tail and the relay deletes them at
its head, thousands a second. Autovacuum visits a database about once a
minute; between its visits the head fills with dead rows that the relay's
``order by id`` scan walks on every batch (measured: up to a thousand buffers
and 3 ms a scan returning nothing, against 6 buffers on a vacuumed outbox). So
the leader vacuums the outbox itself, on a connection of its own beside the
batches, once ``relay_vacuum_rows`` were deleted and at most every
``relay_vacuum_interval`` seconds (``OutboxVacuum``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import datetime, timezone

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from paycore.metrics import Metrics, observe_many
from paycore.outbox.partition import partition_of
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


class LeaseLost(Exception):
    """The leader's lock session may have ended (a freeze or a stall longer than half the lease)."""


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
        self.lease = cfg.journal.relay_lease
        self.partitions = PartitionMemo()
        self.vacuum = OutboxVacuum(cfg, metrics=metrics)

    async def _connect(self) -> asyncpg.Connection:
        lease_ms = str(max(int(self.lease * 1000), 100))
        keepalive = str(max(int(self.lease / 3), 1))
        return await asyncpg.connect(self.cfg.database.url, timeout=self.cfg.database.connect_timeout, server_settings={
            "application_name": f"paycore-relay-{os.getpid()}",
            # the bound on takeover: Postgres ends a session that stays idle this long (the lock goes with it)
            "idle_session_timeout": lease_ms, "idle_in_transaction_session_timeout": lease_ms,
            # a peer that is gone (host lost, partition) is noticed by the server's TCP within the lease too
            "tcp_keepalives_idle": keepalive, "tcp_keepalives_interval": keepalive, "tcp_keepalives_count": "2",
            "tcp_user_timeout": lease_ms,
            # every query of this session walks the outbox by its primary key: after a vacuum the table
            # keeps its size with few live rows, and the planner then chose a scan of the whole heap
            # plus a sort (hundreds of buffers a batch) over the index (a few)
            "enable_seqscan": "off"})

    async def _query(self, conn: asyncpg.Connection, fn: str, *args):
        """A query on the lock session that did not span a freeze: if more than half the lease
        passed while it ran, Postgres may have ended the session and another leader begun."""
        t0 = time.monotonic()
        result = await getattr(conn, fn)(*args)
        if time.monotonic() - t0 > self.lease / 2:
            raise LeaseLost(f"a query on the lock session took {time.monotonic() - t0:.1f}s")
        return result

    async def _beating(self, conn: asyncpg.Connection, fut) -> None:
        """Wait for ``fut`` (Kafka's acknowledgements) while keeping the lock session busy."""
        deadline = time.monotonic() + self.cfg.kafka.send_timeout
        beat = self.lease / 3
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fut.cancel()
                raise asyncio.TimeoutError("kafka did not acknowledge in time")
            done, _ = await asyncio.wait({fut}, timeout=min(beat, left))
            if done:
                return fut.result()
            await self._query(conn, "fetchval", "select 1")

    async def step(self) -> float:
        """One leadership term: take the lock (or wait for it), then drain until stopped or failed."""
        conn: asyncpg.Connection | None = None
        producer: AIOKafkaProducer | None = None
        try:
            conn = await self._connect()
            if not await conn.fetchval("select pg_try_advisory_lock($1)", RELAY_LOCK):
                return 1.0
            self.is_leader = True
            self.metrics.relay_leader.set(1)
            await ensure_topic(self.cfg)
            producer = make_producer(self.cfg)
            await asyncio.wait_for(producer.start(), self.cfg.kafka.send_timeout)
            await self._drain(conn, producer)
            return 0.0
        finally:
            if self.is_leader:
                self.metrics.relay_leader.set(0)
            self.is_leader = False
            await self.vacuum.close()
            if producer is not None:
                await _drop_producer(producer)
            if conn is not None:
                conn.terminate()

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, (LeaseLost, KafkaError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                                OSError))

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, (LeaseLost, asyncpg.IdleSessionTimeoutError, asyncpg.AdminShutdownError)) or \
                "idle-session timeout" in str(exc):
            self.metrics.relay_stepdowns.labels("lease_lost").inc()
        kind = ("kafka" if isinstance(exc, (KafkaError, asyncio.TimeoutError)) else
                "database" if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)) else "other")
        self.metrics.relay_errors.labels(kind).inc()

    async def _drain(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        topic = self.cfg.kafka.topic
        last_depth = 0.0
        while not self.stopping:
            rows = await self._query(
                conn, "fetch", "select id, payment_id, payload, created_at from outbox order by id limit $1", self.batch)
            now = time.monotonic()
            if not rows:   # the select just saw it empty: no count needed on every idle poll
                self.metrics.outbox_depth.set(0)
                last_depth = now
                await asyncio.sleep(self.idle)
                continue
            if now - last_depth > 2.0:
                self.metrics.outbox_depth.set(await self._query(
                    conn, "fetchval", "select count(*) from (select 1 from outbox limit 1000000) o"))
                last_depth = now
            futures = await _send_batches(producer, topic, rows, self.partitions)
            await self._beating(conn, asyncio.gather(*futures))
            await self._query(conn, "execute", "delete from outbox where id = any($1::bigint[])", [r["id"] for r in rows])
            self.vacuum.deleted(len(rows))
            at = datetime.now(timezone.utc)
            observe_many(self.metrics.relay_lag, [(at - r["created_at"]).total_seconds() for r in rows])
            self.metrics.events_published.inc(len(rows))
            self.published += len(rows)
            if len(rows) < self.batch:
                # caught up: let the next batch gather for one poll interval instead of
                # paying a select, a produce round trip and a delete for a handful of rows
                await asyncio.sleep(self.idle)


class OutboxVacuum:
    """The leader's own vacuum of the outbox: ``vacuum`` once ``relay_vacuum_rows`` rows were
    deleted since the last one and ``relay_vacuum_interval`` seconds passed, in a task of its own
    on a connection of its own (the lock session must keep answering within the lease), one at a
    time. ``skip_locked``: when autovacuum or another vacuum holds the table, this round is
    skipped, never waited for. A failure is counted and the next round tries again; it never
    stops the relay."""

    def __init__(self, cfg: Config, *, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.rows = cfg.journal.relay_vacuum_rows
        self.interval = cfg.journal.relay_vacuum_interval
        self.pending = 0
        self.last = time.monotonic()
        self.task: asyncio.Task | None = None
        self.conn: asyncpg.Connection | None = None

    def deleted(self, n: int) -> None:
        self.pending += n
        running = self.task is not None and not self.task.done()
        if self.rows <= 0 or self.pending < self.rows or running or time.monotonic() - self.last < self.interval:
            return
        self.pending = 0
        self.last = time.monotonic()
        self.task = asyncio.create_task(self._run(), name="outbox-vacuum")

    async def _run(self) -> None:
        t0 = time.monotonic()
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncpg.connect(
                    self.cfg.database.url, timeout=self.cfg.database.connect_timeout,
                    server_settings={"application_name": f"paycore-relay-vacuum-{os.getpid()}"})
            await self.conn.execute("vacuum (skip_locked, index_cleanup on) outbox")
            self.metrics.relay_vacuums.labels("done").inc()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the next round tries again; the relay goes on regardless
            self.metrics.relay_vacuums.labels("failed").inc()
            log.warning("outbox vacuum failed (%s); the next round tries again", type(e).__name__)
            if self.conn is not None:
                self.conn.terminate()
                self.conn = None
        finally:
            self.metrics.relay_vacuum_seconds.observe(time.monotonic() - t0)

    async def close(self) -> None:
        """End of a leadership term: stop a vacuum in progress (Postgres cancels it with the
        connection) and close the connection."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.task = None
        if self.conn is not None:
            self.conn.terminate()
            self.conn = None
        self.pending = 0


class PartitionMemo:
    """The partition of each recent payment id, as Kafka's default partitioner places it
    (``partition.partition_of``: what aiokafka's ``send`` and the Java client would choose).

    A payment's events follow each other within milliseconds (created, then its outcome):
    remembering the answer saves the hash for the second. Forgotten when the topic's partition
    count changes, and wholesale past ``size`` keys."""

    def __init__(self, size: int = 65536) -> None:
        self.size = size
        self.count = 0
        self.known: dict[bytes, int] = {}

    def of(self, partitions: int, key: bytes) -> int:
        if partitions != self.count or len(self.known) >= self.size:
            self.known.clear()
            self.count = partitions
        part = self.known.get(key)
        if part is None:
            part = self.known[key] = partition_of(key, partitions)
        return part


async def _send_batches(producer: AIOKafkaProducer, topic: str, rows, memo: PartitionMemo) -> list[asyncio.Future]:
    """Queue ``rows`` (in outbox order) as one record batch per partition, chosen
    by Kafka's default partitioner on the payment id exactly as ``send`` would,
    instead of one ``send`` (a coroutine, a future, a metadata check) per event.
    Per partition the batches go out in order, one at a time, as sends do."""
    count = len(await producer.partitions_for(topic))  # metadata known before partitioning
    futures: list[asyncio.Future] = []
    open_batches: dict[int, object] = {}
    for r in rows:
        key, value = r["payment_id"].encode(), r["payload"]
        part = memo.of(count, key)
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
