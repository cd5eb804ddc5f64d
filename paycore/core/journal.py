"""The journal: every state change commits with its event and outbox row.

Group commit: callers ``await journal.commit(change)``; a flusher takes every
change queued so far (after waiting at most ``max_wait_ms`` for company) and
writes them with ONE statement (one round trip, one implicit transaction),
whatever the batch size, made of data-modifying CTEs:

* new payments: ``insert … from unnest($1::payments[]) on conflict do nothing``
  (a conflict on (merchant, merchant_order_no) is the idempotency answer); a
  new payment may carry its API request's nonce, inserted into ``nonces`` by
  the same statement and gating the payment's row (replay protection without
  a round trip of its own; a nonce already there refuses the change);
* changed payments: one ``update … from unnest(…)`` guarded by ``seq``
  (optimistic concurrency: a change computed from a stale row is refused and
  the caller reloads and decides again);
* refunds inserted/updated, events, outbox and webhook rows from arrays,
  each filtered to the payments whose change applied.

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

from paycore.metrics import Metrics
from paycore.errors import Replayed, Unavailable
from paycore.core.models import Payment, Refund

log = logging.getLogger("paycore.journal")

_PAY_COLS = ", ".join(Payment.COLUMNS)
_PAY_SET = ", ".join(f"{c} = u.{c}" for c in Payment.COLUMNS if c not in ("id", "merchant_id", "merchant_order_no",
                                                                        "fingerprint", "created_at"))
_REF_COLS = ", ".join(Refund.COLUMNS)
_EVENTS = ("unnest($6::text[], $7::text[], $8::int[], $9::text[], $10::timestamptz[], $11::bytea[]) "
           "as e(event_id, payment_id, seq, type, occurred_at, payload) where e.payment_id in (select id from ok)")
# One statement per batch: its CTEs share one snapshot and a batch holds at most one
# change per payment, so the insert and the update never meet on a row. The event
# payload travels once, as the exact bytes the outbox and webhooks keep.
_PAY_U = ", ".join(f"u.{c}" for c in Payment.COLUMNS)
WRITE_BATCH = f"""
with non as (
    insert into nonces (merchant_id, nonce, expires_at)
    select * from unnest($17::text[], $18::text[], $19::timestamptz[]) on conflict do nothing
    returning merchant_id, nonce
), ins as (
    insert into payments ({_PAY_COLS}) select {_PAY_U}
    from unnest($1::payments[], $20::text[]) as u({_PAY_COLS}, claim_nonce)
    where u.claim_nonce is null
       or exists (select 1 from non where non.merchant_id = u.merchant_id and non.nonce = u.claim_nonce)
    on conflict do nothing returning id
), upd as (
    update payments p set {_PAY_SET} from unnest($2::payments[], $3::int[]) as u({_PAY_COLS}, expected)
    where p.id = u.id and p.seq = u.expected returning p.id
), ok as (
    select id from ins union all select id from upd
), rins as (
    insert into refunds ({_REF_COLS}) select * from unnest($4::refunds[]) as r
    where r.payment_id in (select id from ok) returning 1
), rupd as (
    update refunds r set status = u.status, channel_refund_no = u.channel_refund_no, failure = u.failure,
        updated_at = u.updated_at, next_check_at = u.next_check_at, checks = u.checks
    from unnest($5::refunds[]) as u where r.id = u.id and u.payment_id in (select id from ok) returning 1
), ev as (
    insert into events (event_id, payment_id, seq, type, occurred_at, payload)
    select e.event_id, e.payment_id, e.seq, e.type, e.occurred_at, convert_from(e.payload, 'UTF8')::jsonb
    from {_EVENTS} returning 1
), ob as (
    insert into outbox (event_id, payment_id, payload, created_at)
    select e.event_id, e.payment_id, e.payload, e.occurred_at from {_EVENTS} returning 1
), wh as (
    insert into webhooks (event_id, merchant_id, payment_id, url, payload)
    select h.event_id, h.merchant_id, h.payment_id, h.url, h.payload
    from unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::bytea[])
         as h(event_id, merchant_id, payment_id, url, payload)
    where h.payment_id in (select id from ok) returning 1
)
select id, null::text from ok union all select merchant_id, nonce from non"""

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
    #: a new payment's API request nonce and its expiry: recorded with the payment, or the change is a replay
    nonce: tuple[str, datetime] | None = None
    future: asyncio.Future[bool] | None = field(default=None, repr=False)


class Journal:
    # One flusher by default: while its statement is in flight the next batch gathers,
    # so batches grow with the load; a second flusher mostly splits them in two (more
    # round trips for the same changes) since both wait on the same database.
    def __init__(self, pool: asyncpg.Pool, batch_max: int = 256, max_wait_ms: float = 2.0,
                 flushers: int = 1, *, metrics: Metrics, acquire_timeout: float = 5.0) -> None:
        self.pool = pool
        # a connection stuck on an unreachable database (its release waits on a reset that never answers)
        # must not hold the batch forever: past this, the write's outcome is "not written" (nothing sent)
        self.acquire_timeout = acquire_timeout
        self.metrics = metrics
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
        database could not be reached; then nothing was committed. Raises
        Replayed if the change carries a nonce that was already used (then
        nothing was committed either)."""
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
        self.metrics.journal_batch.observe(len(batch))
        try:
            results = await self._write(batch)
        except DB_DOWN as e:
            # The statement may have committed before its answer was lost (the connection
            # dropped after COMMIT reached Postgres, or our command timeout fired while it
            # ran): "nothing accepted" would then be false. Ask the database what it holds.
            log.warning("journal: database unavailable (%s); re-reading what was written", type(e).__name__)
            results = await settled(self.pool, [(c.payment, c.event[0] if c.event else None) for c in batch])
            if results is None:
                for c in batch:
                    if c.future and not c.future.done():
                        c.future.set_exception(Unavailable("database unavailable"))
                return
            self.metrics.events_written.inc(sum(1 for c, good in zip(batch, results) if good and c.event))
            for c, ok in zip(batch, results):
                if c.future and not c.future.done():
                    if ok:
                        c.future.set_result(True)
                    else:
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
                if ok is None:
                    c.future.set_exception(Replayed("nonce already used"))
                else:
                    c.future.set_result(ok)

    async def _write(self, batch: list[Change]) -> list[bool | None]:
        """Write the batch; per change True (applied), False (refused: idempotency or stale seq)
        or None (its nonce was already used: a replayed request, nothing written for it)."""
        ins: list[tuple] = []
        upd: list[tuple] = []
        expected: list[int] = []
        new_refunds: list[tuple] = []
        changed_refunds: list[tuple] = []
        e_id: list[str] = []
        e_pay: list[str] = []
        e_seq: list[int] = []
        e_type: list[str] = []
        e_at: list[datetime] = []
        e_body: list[bytes] = []
        hooks: tuple[list, list, list, list, list] = ([], [], [], [], [])
        ins_nonce: list[str | None] = []
        n_m: list[str] = []
        n_n: list[str] = []
        n_exp: list[datetime] = []
        replayed: set[int] = set()
        seen_nonces: set[tuple[str, str]] = set()
        for i, c in enumerate(batch):
            p = c.payment
            if c.expected_seq is None:
                if c.nonce is not None:
                    if (p.merchant_id, c.nonce[0]) in seen_nonces:   # the same request twice in one batch
                        replayed.add(i)
                        continue
                    seen_nonces.add((p.merchant_id, c.nonce[0]))
                    n_m.append(p.merchant_id)
                    n_n.append(c.nonce[0])
                    n_exp.append(c.nonce[1])
                ins.append(p.to_record())
                ins_nonce.append(c.nonce[0] if c.nonce is not None else None)
            else:
                upd.append(p.to_record())
                expected.append(c.expected_seq)
            if c.refund is not None:
                (new_refunds if c.refund_insert else changed_refunds).append(c.refund.to_record())
            if c.event is not None:
                eid, etype, body, at = c.event
                e_id.append(eid)
                e_pay.append(p.id)
                e_seq.append(p.seq)
                e_type.append(etype)
                e_at.append(at)
                e_body.append(body)
                if p.notify_url and etype in FINAL_EVENT_TYPES:
                    for col, v in zip(hooks, (eid, p.merchant_id, p.id, p.notify_url, body)):
                        col.append(v)
        async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
            rows = await conn.fetch(WRITE_BATCH, ins, upd, expected, new_refunds, changed_refunds,
                                    e_id, e_pay, e_seq, e_type, e_at, e_body, *hooks, n_m, n_n, n_exp, ins_nonce)
        applied = {r[0] for r in rows if r[1] is None}
        claimed = {(r[0], r[1]) for r in rows if r[1] is not None}
        ok: list[bool | None] = [
            None if i in replayed or (c.nonce is not None and c.expected_seq is None
                                      and (c.payment.merchant_id, c.nonce[0]) not in claimed)
            else c.payment.id in applied for i, c in enumerate(batch)]
        self.metrics.events_written.inc(sum(1 for c, good in zip(batch, ok) if good and c.event is not None))
        return ok


#: when the outcome of a write is unknown: how long to keep asking the database (seconds between tries)
REREAD_PAUSES = (0.2, 0.4, 0.8)
#: and at most how long in all (seconds), so that a till waiting on an unreachable database gets its 503
#: within the command timeout plus this, not after every try has waited out its own timeouts
REREAD_BUDGET = 2.0


async def settled(pool: Any, changes: list[tuple[Payment, str | None]],
                  budget: float = REREAD_BUDGET) -> list[bool] | None:
    """After a write whose outcome is unknown: which of ``changes`` (the payment row
    written, the event id or None) are in the database. A change with an event is
    there when its event is (event ids are unique); one without, when the row
    equals what was written. None when the database cannot be read within
    ``budget`` seconds. A change not found is asked again for a while, since the
    lost statement may still be running (its backend has not yet noticed that its
    client is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    found: list[bool] | None = None
    for pause in REREAD_PAUSES:
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        left = deadline - loop.time()
        if left <= 0.05:
            break
        try:
            async with pool.acquire(timeout=left) as conn:
                left = max(0.05, deadline - loop.time())
                eids = [e for _, e in changes if e is not None]
                have = {r[0] for r in await conn.fetch(
                    "select event_id from events where event_id = any($1::text[])", eids,
                    timeout=left)} if eids else set()
                plain = [p.id for p, e in changes if e is None]
                rows = {r["id"]: Payment.from_record(r) for r in await conn.fetch(
                    f"select {_PAY_COLS} from payments where id = any($1::text[])", plain,
                    timeout=max(0.05, deadline - loop.time()))} if plain else {}
        except DB_DOWN:
            continue
        found = [(e in have) if e is not None else rows.get(p.id) == p for p, e in changes]
        if all(found):
            return found
    return found


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


# --------------------------------------------------------- attention changes
#: events that reach the merchant's webhook besides the final ones
MERCHANT_EVENT_TYPES = FINAL_EVENT_TYPES | {"payment.late_succeeded"}


@dataclass(slots=True)
class RichChange:
    """A rare change with several events (late money, attention items, operator
    resolutions): committed at once in its own transaction, guarded by the
    payment's ``seq`` like every other change, so its events keep ``seq`` order.

    ``events``: (event_id, type, payload, occurred_at, seq) in order;
    ``refunds``: (refund, insert?); ``opened``: attention rows (id, kind,
    refund_id, evidence json) of this payment; ``resolve``: (item id, actor,
    resolution, reason) — refused (InvalidState) if that item is not OPEN.
    """

    payment: Payment
    expected_seq: int
    events: list[tuple[str, str, bytes, datetime, int]]
    refunds: list[tuple[Refund, bool]] = field(default_factory=list)
    opened: list[tuple[int, str, str | None, str]] = field(default_factory=list)
    resolve: tuple[int, str, str, str] | None = None


class AlreadyResolved(Exception):
    pass


async def commit_rich(pool: Any, c: RichChange) -> bool:
    """True once committed; False when the payment changed meanwhile (reload and
    decide again). Raises AlreadyResolved when ``resolve`` names a closed item."""
    p = c.payment
    async with pool.acquire() as conn:
        async with conn.transaction():
            ok = await conn.fetchval(
                f"update payments p set {_PAY_SET} from unnest($1::payments[]) as u({_PAY_COLS}) "
                "where p.id = u.id and p.seq = $2 returning p.id", [p.to_record()], c.expected_seq)
            if ok is None:
                return False
            for r, insert in c.refunds:
                if insert:
                    await conn.execute(f"insert into refunds ({_REF_COLS}) select * from unnest($1::refunds[])",
                                       [r.to_record()])
                else:
                    await conn.execute(
                        "update refunds r set status = u.status, channel_refund_no = u.channel_refund_no, "
                        "failure = u.failure, updated_at = u.updated_at, next_check_at = u.next_check_at, "
                        "checks = u.checks from unnest($1::refunds[]) as u where r.id = u.id", [r.to_record()])
            for item_id, kind, refund_id, evidence in c.opened:
                await conn.execute(
                    "insert into attention_items (id, kind, payment_id, refund_id, merchant_id, channel, evidence) "
                    "values ($1, $2, $3, $4, $5, $6, $7::text::jsonb)",
                    item_id, kind, p.id, refund_id, p.merchant_id, p.channel, evidence)
            if c.resolve is not None:
                item_id, actor, resolution, reason = c.resolve
                done = await conn.fetchval(
                    "update attention_items set status = 'RESOLVED', resolved_at = now(), resolved_by = $2, "
                    "resolution = $3, reason = $4 where id = $1 and status = 'OPEN' returning id",
                    item_id, actor, resolution, reason)
                if done is None:
                    raise AlreadyResolved(str(item_id))
            for eid, etype, body, at, seq in c.events:
                await conn.execute(
                    "insert into events (event_id, payment_id, seq, type, occurred_at, payload) "
                    "values ($1, $2, $3, $4, $5, convert_from($6, 'UTF8')::jsonb)", eid, p.id, seq, etype, at, body)
                await conn.execute("insert into outbox (event_id, payment_id, payload, created_at) "
                                   "values ($1, $2, $3, $4)", eid, p.id, body, at)
                if p.notify_url and etype in MERCHANT_EVENT_TYPES:
                    await conn.execute("insert into webhooks (event_id, merchant_id, payment_id, url, payload) "
                                       "values ($1, $2, $3, $4, $5)", eid, p.merchant_id, p.id, p.notify_url, body)
    return True


async def open_attention_exists(conn: Any, payment_id: str, kind: str, refund_id: str | None = None) -> bool:
    return bool(await conn.fetchval(
        "select 1 from attention_items where payment_id = $1 and kind = $2 and coalesce(refund_id, '') = $3 "
        "and status = 'OPEN'", payment_id, kind, refund_id or ""))
