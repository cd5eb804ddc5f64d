"""The journal: every state change commits with its event and outbox row.

Group commit: callers ``await journal.commit(change)``; a flusher takes every
change queued so far (after waiting at most ``max_wait_ms`` for company) and
writes them in one transaction with a handful of statements, whatever the
batch size:

* new payments: ``insert … select * from unnest($1::payments[]) on conflict do nothing``
  (a conflict on (merchant, merchant_order_no) is the idempotency answer);
* changed payments: one ``update … from unnest(…)`` guarded by ``seq``
  (optimistic concurrency: a change computed from a stale row is refused and
  the caller reloads and decides again);
* refunds inserted/updated for the changes that applied;
* events and outbox rows by COPY.

A batch that fails on data (a constraint) is retried change by change so that
one bad change cannot sink its neighbours; a database that is down fails the
whole batch with ``Unavailable`` and nothing is acknowledged.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from paycore import metrics
from paycore.errors import Unavailable
from paycore.models import Payment, Refund

log = logging.getLogger("paycore.journal")

_PAY_COLS = ", ".join(Payment.COLUMNS)
_PAY_SET = ", ".join(f"{c} = u.{c}" for c in Payment.COLUMNS if c not in ("id", "merchant_id", "merchant_order_no",
                                                                        "fingerprint", "created_at"))
INSERT_PAYMENTS = (f"insert into payments ({_PAY_COLS}) select * from unnest($1::payments[]) "
                   "on conflict do nothing returning id")
UPDATE_PAYMENTS = (f"update payments p set {_PAY_SET} "
                   f"from unnest($1::payments[], $2::int[]) as u({_PAY_COLS}, expected) "
                   "where p.id = u.id and p.seq = u.expected returning p.id")
_REF_COLS = ", ".join(Refund.COLUMNS)
INSERT_REFUNDS = f"insert into refunds ({_REF_COLS}) select * from unnest($1::refunds[])"
UPDATE_REFUNDS = (f"update refunds r set status = u.status, channel_refund_no = u.channel_refund_no, "
                  f"failure = u.failure, updated_at = u.updated_at, next_check_at = u.next_check_at, "
                  f"checks = u.checks from unnest($1::refunds[]) as u where r.id = u.id")

#: events that announce a final status: each becomes a merchant webhook when notify_url is set
FINAL_EVENT_TYPES = frozenset({"payment.succeeded", "payment.failed", "payment.closed", "payment.reversed",
                               "refund.succeeded", "refund.failed"})

DB_DOWN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError,
           asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


@dataclass(slots=True)
class Change:
    """One payment's new row (and refund's), with at most one event.

    ``expected_seq`` None means insert. Otherwise the row in the database must
    still have ``seq == expected_seq``. ``event`` is (event_id, type, payload,
    occurred_at) with the payment's new seq.
    """

    payment: Payment
    expected_seq: int | None
    event: tuple[str, str, bytes, datetime] | None = None
    refund: Refund | None = None
    refund_insert: bool = False
    future: asyncio.Future[bool] | None = field(default=None, repr=False)


class Journal:
    def __init__(self, pool: asyncpg.Pool, batch_max: int = 256, max_wait_ms: float = 2.0,
                 flushers: int = 2) -> None:
        self.pool = pool
        self.batch_max = batch_max
        self.max_wait = max_wait_ms / 1000
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._flushers = flushers
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"journal-{i}") for i in range(self._flushers)]

    async def stop(self) -> None:
        # let queued changes commit before stopping
        for _ in range(200):
            if self._queue.empty():
                break
            await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            c = self._queue.get_nowait()
            if c.future and not c.future.done():
                c.future.set_exception(Unavailable("shutting down"))

    async def commit(self, change: Change) -> bool:
        """Queue ``change``; True once committed, False if refused (idempotency
        conflict on insert, stale seq on update). Raises Unavailable if the
        database could not be reached; then nothing was committed."""
        change.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(change)
        return await change.future

    async def _run(self) -> None:
        q = self._queue
        while True:
            first = await q.get()
            if self.max_wait and q.qsize() < self.batch_max:
                await asyncio.sleep(self.max_wait)
            batch = [first]
            seen = {first.payment.id}
            deferred: list[Change] = []
            while len(batch) < self.batch_max and not q.empty():
                c = q.get_nowait()
                if c.payment.id in seen:
                    deferred.append(c)   # one change per payment per batch
                else:
                    seen.add(c.payment.id)
                    batch.append(c)
            for c in deferred:
                q.put_nowait(c)
            try:
                await self._flush(batch)
            except asyncio.CancelledError:
                for c in batch:
                    if c.future and not c.future.done():
                        c.future.set_exception(Unavailable("shutting down"))
                raise
            except Exception:  # never let the flusher die
                log.exception("journal flush failed")
                for c in batch:
                    if c.future and not c.future.done():
                        c.future.set_exception(Unavailable("journal error"))

    async def _flush(self, batch: list[Change]) -> None:
        metrics.JOURNAL_BATCH.observe(len(batch))
        try:
            results = await self._write(batch)
        except DB_DOWN as e:
            log.warning("journal: database unavailable (%s)", type(e).__name__)
            for c in batch:
                if c.future and not c.future.done():
                    c.future.set_exception(Unavailable("database unavailable"))
            return
        except asyncpg.PostgresError:
            if len(batch) == 1:
                log.exception("journal: change refused by the database")
                results = [False]
            else:
                # isolate the offending change(s)
                for c in batch:
                    await self._flush([c])
                return
        for c, ok in zip(batch, results):
            if c.future and not c.future.done():
                c.future.set_result(ok)

    async def _write(self, batch: list[Change]) -> list[bool]:
        inserts = [c for c in batch if c.expected_seq is None]
        updates = [c for c in batch if c.expected_seq is not None]
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                applied: set[str] = set()
                if inserts:
                    rows = await conn.fetch(INSERT_PAYMENTS, [c.payment.to_record() for c in inserts])
                    applied.update(r[0] for r in rows)
                if updates:
                    rows = await conn.fetch(UPDATE_PAYMENTS, [c.payment.to_record() for c in updates],
                                            [c.expected_seq for c in updates])
                    applied.update(r[0] for r in rows)
                ok = [c.payment.id in applied for c in batch]
                done = [c for c, good in zip(batch, ok) if good]
                new_refunds = [c.refund.to_record() for c in done if c.refund is not None and c.refund_insert]
                changed_refunds = [c.refund.to_record() for c in done if c.refund is not None and not c.refund_insert]
                if new_refunds:
                    await conn.execute(INSERT_REFUNDS, new_refunds)
                if changed_refunds:
                    await conn.execute(UPDATE_REFUNDS, changed_refunds)
                events = [(c.event[0], c.payment.id, c.payment.seq, c.event[1], c.event[3], c.event[2])
                          for c in done if c.event is not None]
                if events:
                    await conn.copy_records_to_table(
                        "events", records=events,
                        columns=("event_id", "payment_id", "seq", "type", "occurred_at", "payload"))
                    await conn.copy_records_to_table(
                        "outbox", records=[(e[0], e[1], e[5], e[4]) for e in events],
                        columns=("event_id", "payment_id", "payload", "created_at"))
                    hooks = [(c.event[0], c.payment.merchant_id, c.payment.id, c.payment.notify_url, c.event[2])
                             for c in done if c.event is not None and c.payment.notify_url
                             and c.event[1] in FINAL_EVENT_TYPES]
                    if hooks:
                        await conn.copy_records_to_table(
                            "webhooks", records=hooks,
                            columns=("event_id", "merchant_id", "payment_id", "url", "payload"))
        metrics.EVENTS_WRITTEN.inc(len(events))
        return ok


async def load_payment(conn: Any, payment_id: str) -> Payment | None:
    row = await conn.fetchrow(f"select {_PAY_COLS} from payments where id = $1", payment_id)
    return Payment.from_record(row) if row else None


async def load_payment_by_order(conn: Any, merchant_id: str, order_no: str) -> Payment | None:
    row = await conn.fetchrow(f"select {_PAY_COLS} from payments where merchant_id = $1 and merchant_order_no = $2",
                              merchant_id, order_no)
    return Payment.from_record(row) if row else None


async def load_refund(conn: Any, refund_id: str) -> Refund | None:
    row = await conn.fetchrow(f"select {_REF_COLS} from refunds where id = $1", refund_id)
    return Refund.from_record(row) if row else None


async def load_refund_by_no(conn: Any, payment_id: str, refund_no: str) -> Refund | None:
    row = await conn.fetchrow(f"select {_REF_COLS} from refunds where payment_id = $1 and refund_no = $2",
                              payment_id, refund_no)
    return Refund.from_record(row) if row else None


PAYMENT_SELECT = f"select {_PAY_COLS} from payments"
REFUND_SELECT = f"select {_REF_COLS} from refunds"
