"""Data that stays fast as it grows (migration 012, docs/data.md): the upgrade of
a database that already holds data, partitions made ahead, retention dropping
only what may go, the uniqueness the code relies on, and `paycore maintain`
running while payments flow. Real Postgres (and, for the load, the stack)."""
from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import sys
from datetime import date, datetime, timedelta, timezone

import asyncpg
import pytest

from paycore.bizday import Calendar
from paycore.config import DataConfig, SettlementConfig
from paycore.ops.maintain import Maintenance, days_between, partitions
from paycore.outbox.settlement import Line, write_lines
from paycore.storage import db
from tests.support.chaoskit import run_audit
from tests.support.helpers import amount, auth_code
from tests.support.stack import PG_ADMIN

CAL = SettlementConfig().calendar()
NOW = datetime.now(timezone.utc)


@pytest.fixture
async def scratch():
    """A database of its own (no relay, no server): what maintain sees is what the test wrote."""
    name = f"paycore_data_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'create database "{name}"')
    url = db.with_database(PG_ADMIN, name)
    try:
        yield url
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await db.init_connection(conn)
    return conn


async def add_event(conn, at: datetime, *, outbox: bool = False) -> str:
    eid = "evt_" + secrets.token_hex(8)
    await conn.execute("select paycore_ensure_partitions('events', 'occurred_at', 'day', $1, $1)", at)
    await conn.execute("insert into events values ($1, $2, 1, 'payment.created', $3, '{}'::jsonb)",
                       eid, "pay_" + secrets.token_hex(6), at)
    if outbox:
        await conn.execute("insert into outbox (event_id, payment_id, payload, created_at) values ($1, 'p', 'x', $2)",
                           eid, at)
    return eid


async def add_webhook(conn, at: datetime, status: str) -> None:
    await conn.execute("select paycore_ensure_partitions('webhooks', 'created_at', 'month', $1, $1)", at)
    await conn.execute("insert into webhooks (event_id, merchant_id, payment_id, url, payload, status, created_at) "
                       "values ($1, 'm', 'p', 'http://x', 'x', $2, $3)", "evt_" + secrets.token_hex(8), status, at)


async def close_days(conn, days: list[date]) -> None:
    await conn.execute("insert into settlement_closes (day) select unnest($1::date[]) on conflict do nothing", days)


def line(event_id: str, at: datetime) -> Line:
    return Line(event_id=event_id, merchant_id="m", day=CAL.day_of(at), kind="payment", type="payment.succeeded",
                id="pay_1", payment_id="pay_1", merchant_order_no="o1", channel="bankwallet", method="barcode",
                amount=100, fee=1, occurred_at=at)


async def names(conn, table: str) -> set[str]:
    return {p.name for p in await partitions(conn, table)}


def pname(table: str, at: datetime, unit: str = "day") -> str:
    return f"{table}_p{at.strftime('%Y%m%d' if unit == 'day' else '%Y%m')}"


# ------------------------------------------------------------------ upgrade path
async def test_upgrade_of_a_database_with_data_keeps_every_row_and_every_guarantee(scratch):
    await db.migrate(scratch, until="012")
    conn = await connect(scratch)
    try:
        old = NOW - timedelta(days=40)
        await conn.execute("insert into events values ('evt_old', 'pay_1', 1, 'payment.created', $1, '{}'::jsonb), "
                           "('evt_new', 'pay_1', 2, 'payment.succeeded', $2, '{\"a\": 1}'::jsonb)", old, NOW)
        await conn.execute("insert into webhooks (event_id, merchant_id, payment_id, url, payload, created_at, status) "
                           "values ('evt_old', 'm', 'pay_1', 'http://x', 'x', $1, 'DELIVERED'), "
                           "('evt_new', 'm', 'pay_1', 'http://x', 'y', $2, 'PENDING')", old, NOW)
        before_ids = [r[0] for r in await conn.fetch("select id from webhooks order by id")]
        await conn.execute("insert into settlement_lines (event_id, merchant_id, day, kind, type, id, payment_id, "
                           "merchant_order_no, channel, method, amount, fee, net, occurred_at) values ('evt_new', "
                           "'m', $1, 'payment', 'payment.succeeded', 'pay_1', 'pay_1', 'o1', 'bankwallet', "
                           "'barcode', 100, 1, 99, $2)", CAL.day_of(NOW), NOW)
        assert await conn.fetchval("select count(*) from pg_partitioned_table") == 0

        applied = await db.migrate(scratch)
        assert "012_partitions" in applied

        # every row is where its instant says, with its content
        rows = await conn.fetch("select tableoid::regclass::text as part, event_id, payload from events order by seq")
        assert [(r["part"], r["event_id"]) for r in rows] == [(pname("events", old), "evt_old"),
                                                              (pname("events", NOW), "evt_new")]
        assert rows[1]["payload"] == {"a": 1}
        hooks = await conn.fetch("select id, status, tableoid::regclass::text as part from webhooks order by id")
        assert [h["id"] for h in hooks] == before_ids
        assert [h["status"] for h in hooks] == ["DELIVERED", "PENDING"]
        assert hooks[0]["part"] == pname("webhooks", old, "month")
        # the id sequence goes on from where it was
        new_id = await conn.fetchval("insert into webhooks (event_id, merchant_id, payment_id, url, payload) "
                                     "values ('evt_3', 'm', 'p', 'u', 'z') returning id")
        assert new_id > max(before_ids)
        # partitions are there ahead of time: the next 14 days of events, 2 months of the others
        ev = await names(conn, "events")
        assert {pname("events", NOW + timedelta(days=d)) for d in range(15)} <= ev
        assert pname("webhooks", NOW + timedelta(days=40), "month") in await names(conn, "webhooks")
        # the settlement consumer's dedup holds across the new key: a redelivery is no new line
        async with conn.transaction():
            assert await write_lines(conn, [line("evt_new", NOW)]) == 0
        assert await conn.fetchval("select count(*) from settlement_lines") == 1
        # history stays history
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("update events set type = 'x' where event_id = 'evt_new'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("delete from events where event_id = 'evt_old'")
        # an event outside every partition is refused loudly, never stored somewhere unseen
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("insert into events values ('evt_far', 'p', 1, 't', $1, '{}'::jsonb)",
                               NOW + timedelta(days=400))
    finally:
        await conn.close()


# -------------------------------------------------------------------- retention
async def test_retention_drops_only_what_is_published_settled_and_delivered(scratch, tmp_path):
    await db.migrate(scratch)
    conn = await connect(scratch)
    try:
        a, b, c = (NOW - timedelta(days=d) for d in (50, 45, 40))
        recent = NOW - timedelta(days=10)
        await add_event(conn, a)
        await add_event(conn, b)
        unpublished = await add_event(conn, c, outbox=True)
        await add_event(conn, recent)
        await close_days(conn, days_between(CAL, *(await bounds(conn, pname("events", a)))))
        await close_days(conn, days_between(CAL, *(await bounds(conn, pname("events", c)))))
        await close_days(conn, days_between(CAL, *(await bounds(conn, pname("events", recent)))))
        five, six = NOW - timedelta(days=5 * 31), NOW - timedelta(days=6 * 31)
        await add_webhook(conn, five, "PENDING")
        await add_webhook(conn, six, "DELIVERED")
        await add_webhook(conn, six, "FAILED")
        for at in (NOW - timedelta(days=30 * 31), NOW - timedelta(days=27 * 31)):
            await conn.execute("select paycore_ensure_partitions('settlement_lines', 'occurred_at', 'month', $1, $1)",
                               at)
            async with conn.transaction():
                await write_lines(conn, [line("evt_" + secrets.token_hex(6), at)])
        await close_days(conn, [CAL.day_of(NOW - timedelta(days=30 * 31))])

        cfg = DataConfig(export_dir=str(tmp_path / "export"))
        rep = await Maintenance(conn, cfg, CAL).run()
        assert rep.ran
        assert set(rep.dropped) == {pname("events", a), pname("webhooks", six, "month"),
                                    pname("settlement_lines", NOW - timedelta(days=30 * 31), "month")}
        assert "unpublished" in rep.kept[pname("events", c)]
        assert "not settled" in rep.kept[pname("events", b)]
        assert "pending" in rep.kept[pname("webhooks", five, "month")]
        assert "open day" in rep.kept[pname("settlement_lines", NOW - timedelta(days=27 * 31), "month")]
        assert pname("events", recent) not in rep.kept and pname("events", recent) in await names(conn, "events")
        # kept partitions are attached again, their rows readable through the parent
        assert await conn.fetchval("select count(*) from events where event_id = $1", unpublished) == 1
        assert await conn.fetchval("select count(*) from events") == 3
        assert await conn.fetchval("select count(*) from webhooks") == 1
        # what was dropped was exported first, readable, and logged
        with gzip.open(tmp_path / "export" / f"{pname('webhooks', six, 'month')}.csv.gz", "rt") as f:
            exported = f.read().splitlines()
        assert exported[0].startswith("id,event_id") and len(exported) == 3
        logged = {r["partition"]: r["action"] for r in await conn.fetch("select partition, action from partition_log")}
        assert logged == {n: "exported" for n in rep.dropped}

        # once published and settled, they go too
        await conn.execute("delete from outbox")
        await close_days(conn, days_between(CAL, *(await bounds(conn, pname("events", b)))))
        rep = await Maintenance(conn, DataConfig(), CAL).run()
        assert set(rep.dropped) == {pname("events", b), pname("events", c)}
        assert await conn.fetchval("select count(*) from events") == 1   # the recent one
    finally:
        await conn.close()


async def bounds(conn, name: str) -> tuple[datetime, datetime]:
    parent = name.rsplit("_p", 1)[0]
    p = next(p for p in await partitions(conn, parent) if p.name == name)
    return p.lo, p.hi


async def test_one_node_at_a_time(scratch):
    await db.migrate(scratch)
    first, second = await connect(scratch), await connect(scratch)
    try:
        await first.execute("select pg_advisory_lock(7261012)")   # a round in progress elsewhere
        rep = await Maintenance(second, DataConfig(), CAL).run()
        assert not rep.ran and not rep.created
        await first.execute("select pg_advisory_unlock(7261012)")
        assert (await Maintenance(second, DataConfig(), CAL).run()).ran
    finally:
        await first.close()
        await second.close()


# ------------------------------------------------------------ under a load of payments
async def test_maintain_during_a_load_of_payments_loses_nothing(stack):
    """Old partitions are detached and dropped while payments are written: no request fails,
    every payment ends SUCCEEDED and the audit stays clean."""
    conn = await connect(stack.db_url)
    try:
        old_days = [NOW - timedelta(days=40 + i) for i in range(8)]
        await add_webhook(conn, NOW - timedelta(days=6 * 31), "DELIVERED")
        cfg = DataConfig()   # 35 days of events, 3 months of webhooks

        results: list[tuple[int, str]] = []

        async def payments(n: int) -> None:
            for _ in range(n):
                r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("bankwallet"))
                results.append((r.status, (r.body or {}).get("status", "")))

        async def rounds() -> list[str]:
            dropped: list[str] = []
            mconn = await connect(stack.db_url)
            try:
                for at in old_days:   # one more old partition per round, dropped while the load runs
                    await add_event(mconn, at)
                    await close_days(mconn, days_between(CAL, *(await bounds(mconn, pname("events", at)))))
                    rep = await Maintenance(mconn, cfg, CAL).run()
                    dropped += rep.dropped
                    await asyncio.sleep(0.2)
            finally:
                await mconn.close()
            return dropped

        load = asyncio.gather(*(payments(25) for _ in range(8)))
        dropped, _ = await asyncio.gather(rounds(), load)
        assert len(results) == 200
        assert all(st == 201 and status == "SUCCEEDED" for st, status in results), \
            [r for r in results if r != (201, "SUCCEEDED")][:5]
        assert {pname("events", at) for at in old_days} <= set(dropped)
        assert pname("webhooks", NOW - timedelta(days=6 * 31), "month") in dropped
        left = await names(conn, "events")
        assert not {pname("events", at) for at in old_days} & left
        assert pname("events", NOW + timedelta(days=14)) in left
    finally:
        await conn.close()
    report = await run_audit(stack)
    assert report["ok"] and report["missing"] == 0 and report["out_of_order"] == 0, report


async def test_paycore_maintain_command(stack):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "maintain", "--json",
        env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    rep = json.loads(out)
    assert rep["ran"] and set(rep["partitions"]) == {"events", "webhooks", "settlement_lines"}
    assert datetime.fromisoformat(rep["ahead_until"]["events"]) > NOW + timedelta(days=14)


# ------------------------------------------------------------------ plans of a young database
async def test_pooled_connections_plan_each_statement_for_its_parameters(stack):
    """asyncpg prepares each statement once per pooled connection, and Postgres then keeps the
    generic plan it made after five executions for the connection's life, whatever ANALYZE learns
    later: a pool opened on young tables kept plans made for empty ones (the journal's batch
    hash-joining a scan of every payment, the merchant_order_no lookup walking the merchant's
    payments), slower with every row. paycore's pool plans each execution for its parameters."""
    from paycore.core.journal import load_payment_by_order
    like = "%from payments where merchant_id = $1 and merchant_order_no = $2%"
    plans = "select generic_plans, custom_plans from pg_prepared_statements where statement like $1"
    async with stack.pool.acquire() as conn:   # the pool paycore builds (paycore.storage.db.create_pool)
        assert await conn.fetchval("select current_setting('plan_cache_mode')") == db.PLAN_CACHE_MODE
        for i in range(12):
            assert await load_payment_by_order(conn, stack.merchant_id, f"no-such-order-{i}") is None
        row = await conn.fetchrow(plans, like)
        assert row["generic_plans"] == 0 and row["custom_plans"] >= 12, dict(row)
    # what it prevents: a connection with Postgres's default switches to the cached generic plan
    plain = await asyncpg.connect(stack.db_url)
    try:
        for i in range(12):
            await load_payment_by_order(plain, stack.merchant_id, f"no-such-order-{i}")
        assert (await plain.fetchrow(plans, like))["generic_plans"] > 0
    finally:
        await plain.close()


async def _relay_scan_buffers(conn) -> int:
    """Buffers the relay's batch query touches (what every batch pays)."""
    plan = json.loads(await conn.fetchval(
        "explain (analyze, buffers, format json) select id, payment_id, payload, created_at from outbox "
        "order by id limit 1000"))[0]["Plan"]
    return plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)


async def test_the_relay_vacuums_the_outbox_it_drains(scratch):
    """The outbox is a queue: the relay deletes at its head what payments insert at its tail.
    Left to autovacuum (a visit a minute), its scan walks every dead entry; the relay vacuums the
    table itself once enough rows were deleted, and the scan is short again."""
    from paycore.config import Config, DatabaseConfig, JournalConfig
    from paycore.metrics import Metrics
    from paycore.outbox.relay import OutboxVacuum

    await db.migrate(scratch)
    conn = await connect(scratch)
    try:
        await conn.execute("alter table outbox set (autovacuum_enabled = off)")   # only the relay's vacuum here
        await conn.execute("insert into outbox (event_id, payment_id, payload) select 'evt_' || i, 'pay_' || i, "
                           "convert_to(repeat('x', 600), 'UTF8') from generate_series(1, 30000) i")
        ids = [r["id"] for r in await conn.fetch("select id from outbox order by id")]
        for k in range(0, len(ids), 1000):     # drained as the relay drains it: a batch at a time, from the head
            await conn.execute("delete from outbox where id = any($1::bigint[])", ids[k:k + 1000])
        dirty = await _relay_scan_buffers(conn)

        metrics = Metrics()
        cfg = Config(database=DatabaseConfig(url=scratch),
                     journal=JournalConfig(relay_vacuum_rows=5000, relay_vacuum_interval=0.0))
        vacuum = OutboxVacuum(cfg, metrics=metrics)
        vacuum.deleted(4999)
        assert vacuum.task is None                       # not yet enough deleted rows
        vacuum.deleted(1)
        assert vacuum.task is not None
        vacuum.deleted(50_000)                           # one at a time: no second vacuum while one runs
        first = vacuum.task
        await first
        assert vacuum.task is first
        await vacuum.close()
        assert metrics.relay_vacuums.labels("done")._value.get() == 1
        assert metrics.relay_vacuums.labels("failed")._value.get() == 0

        clean = await _relay_scan_buffers(conn)
        assert dirty > 50, dirty                        # the dead head: tens of index pages and more
        assert clean <= 5, clean                        # vacuumed: the root and a leaf
        assert await conn.fetchval("select vacuum_count from pg_stat_user_tables where relname = 'outbox'") == 1

        # a database that cannot be reached: the round is counted as failed, nothing raises
        down = OutboxVacuum(Config(database=DatabaseConfig(url="postgresql://nobody@127.0.0.1:1/none",
                                                           connect_timeout=0.5),
                                   journal=JournalConfig(relay_vacuum_rows=1, relay_vacuum_interval=0.0)),
                            metrics=metrics)
        down.deleted(1)
        await down.task
        await down.close()
        assert metrics.relay_vacuums.labels("failed")._value.get() == 1
    finally:
        await conn.close()


async def test_the_journal_plans_its_batch_once_and_keeps_the_index_plan(scratch):
    """The journal's connections keep one plan for the batch statement (planning it every time
    cost a quarter of the statement). Made on empty tables, that plan must still be the index one
    (a young table's generic plan was a sequential scan of every payment), and the journal works
    through those connections."""
    from datetime import timedelta

    from paycore.core.journal import WRITE_BATCH, Change, Journal
    from paycore.core.models import Method, Payment, Status, event_payload, new_id, now
    from paycore.config import DatabaseConfig
    from paycore.metrics import Metrics

    await db.migrate(scratch)
    conn = await asyncpg.connect(scratch, server_settings=db.JOURNAL_SETTINGS)
    try:
        types = ("payments[], payments[], int[], refunds[], refunds[], text[], text[], int[], text[], timestamptz[], "
                 "bytea[], text[], text[], text[], text[], bytea[], text[], text[], timestamptz[], text[]")
        await conn.execute(f"prepare batch({types}) as {WRITE_BATCH}")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "explain execute batch(" + ", ".join(f"null::{t}" for t in types.split(", ")) + ")"))
        assert "Index Scan using payments_pkey" in plan and "Index Scan using refunds_pkey" in plan, plan
        assert "Seq Scan" not in plan and "Hash Join" not in plan and "Merge Join" not in plan, plan
        await conn.execute("insert into merchants (id, name, secret_enc) values ('m_plan', 'm', '\\x00')")
    finally:
        await conn.close()

    pool = await db.journal_pool(DatabaseConfig(url=scratch))
    journal = Journal(pool, metrics=Metrics())
    try:
        at = now()
        created = []
        for i in range(3):
            p = Payment(id=new_id("pay"), merchant_id="m_plan", merchant_order_no=f"plan-{i}", fingerprint="f",
                        amount=100, currency="CNY", method=Method.BARCODE, channel="bankwallet",
                        status=Status.PROCESSING, expire_at=at + timedelta(seconds=60), created_at=at, updated_at=at,
                        seq=1, metadata={}, next_check_at=at)
            eid = new_id("evt")
            created.append(Change(p, None, (eid, "payment.created", event_payload(eid, "payment.created", p, at), at)))
        assert await journal._write(created) == [True, True, True]
        for _ in range(2):   # the same statement again, then changes of those payments
            done = []
            for c in created:
                n = c.payment.copy()
                n.seq += 1
                eid = new_id("evt")
                done.append(Change(n, c.payment.seq, (eid, "payment.succeeded",
                                                      event_payload(eid, "payment.succeeded", n, at), at)))
            assert await journal._write(done) == [True, True, True]
            created = done
        async with pool.acquire() as c:
            assert await c.fetchval("select count(*) from events") == 9
            assert await c.fetchval("select max(seq) from payments") == 3
        # every connection of the journal's pool at once (it writes one batch at a time, but which of its
        # two connections a write gets is the pool's choice: a CI run saw the three writes split 1 + 2)
        async with pool.acquire() as a, pool.acquire() as b:
            rows = [r for c in (a, b) for r in await c.fetch(
                "select generic_plans, custom_plans from pg_prepared_statements "
                "where statement like '%insert into nonces%'")]
        assert rows and all(r["custom_plans"] == 0 for r in rows), rows       # never planned per call
        assert sum(r["generic_plans"] for r in rows) >= 3, rows               # each write used the one plan
    finally:
        await pool.close()
