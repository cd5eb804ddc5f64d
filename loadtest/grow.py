"""A grown database for the bench: ``rows`` payments over the last ``days`` days
(a million a day by default), each with its two events, and one refund per
``refund_every`` payments, loaded with COPY (binary, through asyncpg) on a few
connections at once, then VACUUM ANALYZEd (as days of autovacuum would have left them).

The rows look like paycore's own: time-ordered ids (paycore.core.models.new_id's
layout), SUCCEEDED barcode payments of the bench merchant through bankwallet,
events in their day's partition (created, then made by paycore_ensure_partitions).
Event payloads are short (~100 bytes instead of ~1 KB) to mind the disk: the
indexes, which are what a lookup walks, are the same size either way.

    python -m loadtest.grow --dsn postgresql://… --rows 1000000
    python -m loadtest.grow --dsn postgresql://… --explain     # the hot queries' plans
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import asyncpg

from paycore.storage import db

CHUNK = 50_000
PAY_COLS = ("id", "merchant_id", "merchant_order_no", "fingerprint", "amount", "currency", "method", "channel",
            "status", "channel_trade_no", "refunded_amount", "refund_reserved", "metadata", "expire_at",
            "created_at", "updated_at", "paid_at", "seq", "fee")
EVENT_COLS = ("event_id", "payment_id", "seq", "type", "occurred_at", "payload")
REFUND_COLS = ("id", "payment_id", "merchant_id", "refund_no", "fingerprint", "amount", "status", "channel_refund_no",
               "created_at", "updated_at")


def _id(prefix: str, at: datetime, n: int) -> str:
    return f"{prefix}_{int(at.timestamp() * 1000):011x}{n:013x}"


def _at(start: datetime, span: float, i: int, rows: int) -> datetime:
    return start + timedelta(seconds=span * i / rows)


def payments(lo: int, hi: int, rows: int, start: datetime, span: float, merchant: str, refund_every: int
             ) -> Iterator[tuple[Any, ...]]:
    meta = b"{}"
    for i in range(lo, hi):
        at = _at(start, span, i, rows)
        refunded = 500 if refund_every and i % refund_every == 0 else 0
        yield (_id("pay", at, i), merchant, f"grown{i}", "f", 20000, "CNY", "barcode", "bankwallet", "SUCCEEDED",
               f"BW{i}", refunded, refunded, meta, at + timedelta(minutes=5), at, at, at, 2, 76)


def events(lo: int, hi: int, rows: int, start: datetime, span: float) -> Iterator[tuple[Any, ...]]:
    for i in range(lo, hi):
        at = _at(start, span, i, rows)
        pid = _id("pay", at, i)
        yield (_id("evt", at, 2 * i), pid, 1, "payment.created", at,
               b'{"type":"payment.created","payment":{"id":"%s","status":"PENDING"}}' % pid.encode())
        yield (_id("evt", at, 2 * i + 1), pid, 2, "payment.succeeded", at,
               b'{"type":"payment.succeeded","payment":{"id":"%s","status":"SUCCEEDED"}}' % pid.encode())


def refunds(lo: int, hi: int, rows: int, start: datetime, span: float, merchant: str, refund_every: int
            ) -> Iterator[tuple[Any, ...]]:
    for i in range(lo - lo % refund_every + (refund_every if lo % refund_every else 0), hi, refund_every):
        at = _at(start, span, i, rows)
        yield (_id("rfd", at, i), _id("pay", at, i), merchant, f"r{i}", "f", 500, "SUCCEEDED", f"BWR{i}",
               at, at)


async def _copy(dsn: str, table: str, cols: tuple[str, ...], gen, parts: list[tuple[int, int]]) -> int:
    conn = await asyncpg.connect(dsn)
    await db.init_connection(conn)
    n = 0
    try:
        await conn.execute("set synchronous_commit = off")
        for lo, hi in parts:
            recs = list(gen(lo, hi))
            await conn.copy_records_to_table(table, records=recs, columns=cols)
            n += len(recs)
    finally:
        await conn.close()
    return n


async def preload(dsn: str, rows: int, *, days: float = 10.0, merchant: str = "m_bench", refund_every: int = 10,
                  connections: int = 2, log=lambda *a: None) -> dict[str, Any]:
    """Load the rows (the merchant must exist); returns counts, seconds and the database's size."""
    t0 = time.monotonic()
    end = datetime.now(timezone.utc) - timedelta(minutes=10)
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select paycore_ensure_partitions('events', 'occurred_at', 'day', $1, $2)", start, end)
    finally:
        await conn.close()
    chunks = [(lo, min(lo + CHUNK, rows)) for lo in range(0, rows, CHUNK)]
    shares = [chunks[k::connections] for k in range(connections)]
    counts = dict.fromkeys(("payments", "events", "refunds"), 0)

    async def each(table, cols, gen):
        got = await asyncio.gather(*(_copy(dsn, table, cols, gen, s) for s in shares if s))
        counts[table] = sum(got)
        log(f"  loaded {counts[table]:,} {table} ({time.monotonic() - t0:.0f} s)")

    await each("payments", PAY_COLS, lambda lo, hi: payments(lo, hi, rows, start, span, merchant, refund_every))
    # refunds reference payments; events reference nothing: both at once
    await asyncio.gather(
        each("events", EVENT_COLS, lambda lo, hi: events(lo, hi, rows, start, span)),
        each("refunds", REFUND_COLS, lambda lo, hi: refunds(lo, hi, rows, start, span, merchant, refund_every))
        if refund_every else asyncio.sleep(0))
    conn = await asyncpg.connect(dsn)
    try:
        # as a database that grew over days would be: visibility map set, statistics known; and no
        # autovacuum of the fresh rows running (and counted as Postgres CPU) while the bench measures
        for table in ("payments", "refunds", "events"):
            await conn.execute(f"vacuum (analyze) {table}")
        # an autovacuum worker the load itself started (inserts past the threshold) can still be
        # going through a table: it would have finished days ago, so let it finish before measuring
        # (one ran for 78 CPU-seconds into the bench's first steps)
        waited = await autovacuum_done(conn, log=log)
        # ... and its pages long since written: without this the checkpoint that flushes the load's
        # ~18 GB of dirty pages (10 M rows) runs during the first measured steps and their p99 is its
        try:
            await conn.execute("checkpoint")
        except asyncpg.InsufficientPrivilegeError:
            log("  (no right to CHECKPOINT: the load's dirty pages are flushed while the bench measures)")
        size = await conn.fetchval("select pg_database_size(current_database())")
    finally:
        await conn.close()
    return dict(counts, seconds=round(time.monotonic() - t0, 1), db_bytes=size, autovacuum_waited_s=waited,
                rows_per_s=round(rows / max(time.monotonic() - t0, 1e-9)))


async def autovacuum_done(conn: asyncpg.Connection, *, timeout: float = 900.0, log=lambda *a: None) -> float:
    """Wait (up to ``timeout`` seconds) until no autovacuum worker runs in this database;
    returns the seconds waited."""
    t0 = time.monotonic()
    said = False
    while time.monotonic() - t0 < timeout:
        busy = await conn.fetch("select query from pg_stat_activity where backend_type = 'autovacuum worker' "
                                "and datname = current_database()")
        if not busy:
            break
        if not said:
            log(f"  waiting for autovacuum: {'; '.join(r['query'] or '?' for r in busy)[:200]}")
            said = True
        await asyncio.sleep(1.0)
    return round(time.monotonic() - t0, 1)


#: the hot queries (docs/data.md): each must keep an index path whatever the table's size
HOT_QUERIES = {
    "read by id": "select * from payments where id = (select max(id) from payments)",
    "by merchant order no (the idempotency check)":
        "select * from payments where merchant_id = 'm_bench' and merchant_order_no = 'grown12345'",
    "recovery's due scan": "select * from payments where next_check_at <= now() order by next_check_at "
                           "limit 200 for update skip locked",
    "reconciliation by day: payments": (
        "select id, merchant_id, amount, status, channel_trade_no from payments where channel = 'bankwallet' "
        "and paid_at >= now() - interval '3 days' and paid_at < now() - interval '2 days' "
        "and status in ('SUCCEEDED', 'REVERSED')"),
    "reconciliation by day: refunds": (
        "select r.id from refunds r join payments p on p.id = r.payment_id where p.channel = 'bankwallet' "
        "and r.status = 'SUCCEEDED' and r.updated_at >= now() - interval '3 days' "
        "and r.updated_at < now() - interval '2 days'"),
    "search by merchant and day": (
        "select id, status, amount, created_at from payments where merchant_id = 'm_bench' "
        "and created_at >= now() - interval '3 days' and created_at < now() - interval '2 days' "
        "order by created_at limit 50"),
    "a refund by its number": "select * from refunds where payment_id = 'x' and refund_no = 'r10'",
    "a payment's events": "select * from events where payment_id = 'x' order by seq",
    "a day's events (settlement check, audit --since)": (
        "select count(*) from events where occurred_at >= now() - interval '3 days' "
        "and occurred_at < now() - interval '2 days'"),
}


async def explain(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for name, sql in HOT_QUERIES.items():
            rows = await conn.fetch(f"explain (costs off) {sql}")
            out[name] = "\n".join(r[0] for r in rows)
        return out
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest.grow", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=10.0)
    ap.add_argument("--merchant", default="m_bench")
    ap.add_argument("--connections", type=int, default=max(2, (os.cpu_count() or 2) // 2))
    ap.add_argument("--explain", action="store_true", help="only print the hot queries' plans (no load)")
    args = ap.parse_args(argv)
    if args.explain:
        for name, plan in asyncio.run(explain(args.dsn)).items():
            print(f"-- {name}\n{plan}\n")
        return 0
    out = asyncio.run(preload(args.dsn, args.rows, days=args.days, merchant=args.merchant,
                              connections=args.connections, log=lambda *a: print(*a, file=sys.stderr)))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
