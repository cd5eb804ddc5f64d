"""The console's payments search at scale: ``python -m loadtest.search_bench --rows 10000000``.

Loads ``--rows`` payments with COPY into a scratch database (migrated like
production, every index in place), spread over ``--days`` days and
``--merchants`` merchants, then times the search the console and portal run
(paycore.core.search, the same SQL) for the common filters — id, merchant
order no, channel trade no, merchant + day, status + day, and the second page
of merchant + day — and prints one JSON line per filter (p50/p99/max in ms)
and each filter's EXPLAIN plan. Opt-in, not part of ``make test``; figures go
in docs/performance.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

import asyncpg

from paycore.core import search
from paycore.storage import db

CHANNELS = ("wechatpay", "alipay", "unionpay", "jdpay", "bestpay", "ecny", "qqwallet", "bankwallet", "douyinpay")
METHODS = ("barcode", "qr", "jsapi", "h5", "app")
STATUSES = ("SUCCEEDED",) * 90 + ("FAILED",) * 5 + ("CLOSED",) * 3 + ("REVERSED",) + ("PROCESSING",)
COLUMNS = ("id", "merchant_id", "merchant_order_no", "fingerprint", "amount", "currency", "method", "channel", "status",
           "channel_trade_no", "expire_at", "created_at", "updated_at", "paid_at", "seq")


def rows(n: int, days: int, merchants: int, start: datetime, seed: int = 7):
    """``n`` payments in time order: ids like paycore's (time-ordered), one order no per merchant each."""
    rnd = random.Random(seed)
    span = days * 86400
    for i in range(n):
        at = start + timedelta(seconds=span * i / n)
        ms = int(at.timestamp() * 1000)
        pid = f"pay_{ms:011x}{rnd.getrandbits(64):013x}"[:28]
        m = f"m_{rnd.randrange(merchants):04d}"
        status = rnd.choice(STATUSES)
        paid = at + timedelta(seconds=2) if status in ("SUCCEEDED", "REVERSED") else None
        yield (pid, m, f"o{i:010d}", "f", rnd.randrange(100, 100_000), "CNY", rnd.choice(METHODS),
               rnd.choice(CHANNELS), status, f"t{i:012d}" if paid else None, at + timedelta(minutes=5), at,
               paid or at, paid, 2)


#: the payments' plain indexes (not those backing a key or a unique constraint, which stay in place)
PLAIN_INDEXES = """select i.relname, pg_get_indexdef(x.indexrelid) from pg_index x join pg_class i on i.oid = x.indexrelid
where x.indrelid = 'payments'::regclass
  and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)"""


async def load(conn: asyncpg.Connection, n: int, days: int, merchants: int, start: datetime,
               index_after: bool = True) -> tuple[float, float]:
    """COPY ``n`` payments; with ``index_after`` (the usual way to bulk-load) the plain indexes are
    dropped first and built again after, with the keys and unique constraints checked all along.
    Returns (seconds copying, seconds building indexes)."""
    await conn.executemany("insert into merchants (id, name, secret_enc) values ($1, $1, '\\x00')",
                           [(f"m_{i:04d}",) for i in range(merchants)])
    plain = await conn.fetch(PLAIN_INDEXES) if index_after else []
    for name, _ in plain:
        await conn.execute(f'drop index "{name}"')
    await conn.execute("set synchronous_commit = off")
    t0 = time.perf_counter()
    gen = rows(n, days, merchants, start)
    chunk = 200_000
    while True:
        batch = [r for _, r in zip(range(chunk), gen)]
        if not batch:
            break
        await conn.copy_records_to_table("payments", records=batch, columns=COLUMNS)
    copied = time.perf_counter() - t0
    t1 = time.perf_counter()
    await conn.execute("set maintenance_work_mem = '1GB'")
    for _, ddl in plain:
        await conn.execute(ddl)
    await conn.execute("analyze payments")
    return copied, time.perf_counter() - t1


async def sample(conn: asyncpg.Connection, n: int, days: int, merchants: int, start: datetime):
    """Values to search for, drawn from what was loaded."""
    rnd = random.Random(11)
    picks = await conn.fetch("select id, merchant_order_no, merchant_id, channel_trade_no, created_at from payments "
                             "tablesample system (0.1) where channel_trade_no is not null limit 2000")
    out = []
    for _ in range(len(picks)):
        p = rnd.choice(picks)
        day = start.date() + timedelta(days=rnd.randrange(days))
        out.append((p, f"m_{rnd.randrange(merchants):04d}", day, rnd.choice(("SUCCEEDED", "FAILED", "CLOSED"))))
    return out


def filters(p, merchant: str, day, status: str) -> dict[str, search.PaymentFilter]:
    since = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
    return {
        "id": search.PaymentFilter(id=p["id"]),
        "merchant_order_no": search.PaymentFilter(merchant_order_no=p["merchant_order_no"]),
        "channel_trade_no": search.PaymentFilter(channel_trade_no=p["channel_trade_no"]),
        "merchant+day": search.PaymentFilter(merchant_id=merchant, since=since, until=since + timedelta(days=1)),
        "status+day": search.PaymentFilter(status=status, since=since, until=since + timedelta(days=1)),
    }


async def bench(conn: asyncpg.Connection, samples, queries: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for p, merchant, day, status in samples[:queries]:
        for name, f in filters(p, merchant, day, status).items():
            t0 = time.perf_counter()
            page, nxt = await search.search(conn, f, limit=50)
            times.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
            if name == "merchant+day" and nxt:
                t0 = time.perf_counter()
                await search.search(conn, f, after=nxt, limit=50)
                times.setdefault("merchant+day page 2", []).append((time.perf_counter() - t0) * 1000)
    return times


async def main(args: argparse.Namespace) -> None:
    admin = args.db_url or os.environ.get("PAYCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = "paycore_search_bench"
    url = db.with_database(admin, name)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    if not args.reuse:
        c = await asyncpg.connect(admin)
        await c.execute(f'drop database if exists "{name}" with (force)')
        await c.execute(f'create database "{name}"')
        await c.close()
        await db.migrate(url)
    conn = await asyncpg.connect(url)
    await db.init_connection(conn)
    try:
        if not args.reuse:
            secs, index_secs = await load(conn, args.rows, args.days, args.merchants, start,
                                          index_after=not args.index_during_load)
            print(json.dumps({"loaded_rows": args.rows, "copy_seconds": round(secs, 1),
                              "rows_per_second": int(args.rows / secs), "index_seconds": round(index_secs, 1),
                              "indexes": await conn.fetchval(
                                  "select count(*) from pg_indexes where tablename = 'payments'")}), flush=True)
        n = await conn.fetchval("select count(*) from payments")
        samples = await sample(conn, n, args.days, args.merchants, start)
        await bench(conn, samples, 20)   # warm the cache the way a running console has it
        times = await bench(conn, samples, args.queries)
        for fname, ts in times.items():
            ts.sort()
            print(json.dumps({"filter": fname, "rows": n, "queries": len(ts),
                              "p50_ms": round(statistics.median(ts), 2),
                              "p99_ms": round(ts[min(len(ts) - 1, int(len(ts) * 0.99))], 2),
                              "max_ms": round(ts[-1], 2)}), flush=True)
        if args.explain:
            p, merchant, day, status = samples[0]
            for fname, f in filters(p, merchant, day, status).items():
                sql, qargs = search.search_sql(f, None, None, 51)
                plan = await conn.fetch("explain (analyze, costs off, timing off, summary off) " + sql, *qargs)
                print(f"-- {fname}\n" + "\n".join(r[0] for r in plan), flush=True)
    finally:
        await conn.close()
        if not args.keep:
            c = await asyncpg.connect(admin)
            await c.execute(f'drop database if exists "{name}" with (force)')
            await c.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--merchants", type=int, default=200)
    ap.add_argument("--queries", type=int, default=300, help="queries per filter")
    ap.add_argument("--db-url", default=None, help="an admin URL of the Postgres to use (default $PAYCORE_TEST_PG)")
    ap.add_argument("--explain", action="store_true", help="print each filter's plan")
    ap.add_argument("--index-during-load", action="store_true",
                    help="keep every index in place while copying (slower; by default the plain indexes are "
                         "built after the COPY)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--reuse", action="store_true", help="search the kept database again without loading")
    asyncio.run(main(ap.parse_args()))
