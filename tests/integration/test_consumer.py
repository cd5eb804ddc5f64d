"""The settlement consumer's lines add up to what the journal says moved (per merchant, channel and
business day, fees included), after
the consumer is killed mid-stream and restarted, and after the broker is
frozen (SIGSTOP) and resumed. The broker keeps its log in memory, so it is
never killed.

The journal side is computed here in SQL from the ``events`` table, not with
the consumer's code. Both sides cover every event of the test session.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

from tests.support.helpers import amount, auth_code
from tests.support.ops import eventually

JOURNAL_TOTALS = """
select payload->'payment'->>'merchant_id' as merchant_id, payload->'payment'->>'channel' as channel,
       (occurred_at at time zone 'Asia/Shanghai')::date as day,
       count(*) filter (where type = 'payment.succeeded') as payments_count,
       coalesce(sum((payload->'payment'->>'amount')::bigint) filter (where type = 'payment.succeeded'), 0)
           as payments_amount,
       coalesce(sum((payload->'payment'->>'fee')::bigint) filter (where type = 'payment.succeeded'), 0)
           as payments_fee,
       count(*) filter (where type = 'payment.reversed' and payload->'payment'->>'paid_at' is not null)
           as reversed_count,
       coalesce(sum((payload->'payment'->>'amount')::bigint)
                filter (where type = 'payment.reversed' and payload->'payment'->>'paid_at' is not null), 0)
           as reversed_amount,
       count(*) filter (where type = 'refund.succeeded') as refunds_count,
       coalesce(sum((payload->'refund'->>'amount')::bigint) filter (where type = 'refund.succeeded'), 0)
           as refunds_amount
from events group by 1, 2, 3
having count(*) filter (where type in ('payment.succeeded', 'refund.succeeded')
                        or (type = 'payment.reversed' and payload->'payment'->>'paid_at' is not null)) > 0
"""
# the lines by the business day their event belongs to (an adjustment's original day), of journal events only
SETTLED_TOTALS = """
select merchant_id, channel, coalesce(original_date, day) as day,
       count(*) filter (where type = 'payment.succeeded') as payments_count,
       coalesce(sum(amount) filter (where type = 'payment.succeeded'), 0) as payments_amount,
       coalesce(sum(fee) filter (where type = 'payment.succeeded'), 0) as payments_fee,
       count(*) filter (where type = 'payment.reversed') as reversed_count,
       coalesce(-sum(amount) filter (where type = 'payment.reversed'), 0) as reversed_amount,
       count(*) filter (where type = 'refund.succeeded') as refunds_count,
       coalesce(-sum(amount) filter (where type = 'refund.succeeded'), 0) as refunds_amount
from settlement_lines l where exists (select 1 from events e where e.event_id = l.event_id) group by 1, 2, 3
"""
COLUMNS = ("payments_count", "payments_amount", "payments_fee", "reversed_count", "reversed_amount",
           "refunds_count", "refunds_amount")


async def journal_totals(stack) -> dict:
    return {(r["merchant_id"], r["channel"], r["day"]): tuple(r[c] for c in COLUMNS)
            for r in await stack.pool.fetch(JOURNAL_TOTALS)}


async def settlement_totals(stack) -> dict:
    return {(r["merchant_id"], r["channel"], r["day"]): tuple(r[c] for c in COLUMNS)
            for r in await stack.pool.fetch(SETTLED_TOTALS)}


async def consumer(stack, name: str) -> asyncio.subprocess.Process:
    log = open(stack.var / f"consumer-{name}.log", "ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "consume", "settlement",
            "--session-timeout-ms", "6000", stdout=log, stderr=asyncio.subprocess.STDOUT, env=stack.env,
            start_new_session=True)
    finally:
        log.close()


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        os.killpg(proc.pid, sig)
        await asyncio.wait_for(proc.wait(), 20)


async def traffic(stack, n: int, pause: float = 0.02) -> None:
    """Payments that move money every way the totals count: paid, declined, refunded, reversed."""
    async def one(i: int) -> None:
        ch = random.choice(("wechatpay", "alipay"))
        kind = i % 6
        r = await stack.pay(amount=amount(13) if kind == 5 else amount(), method="barcode", auth_code=auth_code(ch))
        if r.status != 201 or r.body["status"] != "SUCCEEDED":
            return
        if kind in (1, 2):
            await stack.api("POST", f"/v1/payments/{r.body['id']}/refunds", {"refund_no": "s1", "amount": 100})
        elif kind == 3:
            await stack.api("POST", f"/v1/payments/{r.body['id']}/cancel", {})

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(pause)
    await asyncio.gather(*tasks)


async def settled(stack) -> int:
    return await stack.pool.fetchval("select count(*) from settlement_lines")


async def totals_agree(stack, timeout: float = 60.0) -> dict:
    async def same():
        if await stack.pool.fetchval("select count(*) from outbox"):
            return None
        j, s = await journal_totals(stack), await settlement_totals(stack)
        return j if j == s and j else None
    try:
        return await eventually(same, timeout=timeout, interval=0.3, what="settlement totals = journal totals")
    except AssertionError:
        j, s = await journal_totals(stack), await settlement_totals(stack)
        diff = {k: (j.get(k), s.get(k)) for k in set(j) | set(s) if j.get(k) != s.get(k)}
        raise AssertionError(f"totals differ (journal, settlement): {diff}") from None


async def test_totals_equal_the_journal_after_the_consumer_is_killed_mid_stream(stack):
    first, load = await consumer_under_traffic(stack, "a", payments=150, pause=0.03, applied=15)
    try:
        await stop(first, signal.SIGKILL)     # mid-stream: uncommitted offsets, maybe a half-done batch
        assert not load.done(), "the stream should still be flowing when the consumer dies"
        await asyncio.sleep(0.5)
        second = await consumer(stack, "b")
        try:
            await load
            totals = await totals_agree(stack)
        finally:
            await stop(second)
    finally:
        await stop(first, signal.SIGKILL)
    assert sum(v[0] for v in totals.values()) > 0 and sum(v[5] for v in totals.values()) > 0
    print(f"\nsettlement after a kill: {len(totals)} (merchant, channel, day) rows agree with the journal")


async def test_totals_equal_the_journal_after_the_broker_is_frozen_and_resumed(stack):
    proc, load = await consumer_under_traffic(stack, "c", payments=100, pause=0.04, applied=5)
    try:
        stack.broker.freeze()
        try:
            await asyncio.sleep(4)   # payments go on; the relay and the consumer wait for the broker
        finally:
            stack.broker.thaw()
        await load
        totals = await totals_agree(stack)
        assert proc.returncode is None, "the consumer rides out a broker outage"
    finally:
        await stop(proc)
    print(f"\nsettlement after a freeze: {len(totals)} rows agree with the journal")


async def consumer_under_traffic(stack, name: str, *, payments: int, pause: float, applied: int):
    """A consumer that has joined its group, and a stream of payments it has begun to apply."""
    proc = await consumer(stack, name)
    try:
        await consuming(stack)
        before = await settled(stack)
        load = asyncio.create_task(traffic(stack, payments, pause=pause))
        await eventually(lambda: _more(stack, before + applied), timeout=30, what="the consumer to apply events")
    except BaseException:
        await stop(proc, signal.SIGKILL)
        raise
    return proc, load


async def consuming(stack) -> None:
    """Wait until a freshly started consumer has joined its group and applies events."""
    before = await settled(stack)
    await traffic(stack, 2, pause=0)
    await eventually(lambda: _more(stack, before + 1), timeout=40, what="the consumer to join and apply")


async def _more(stack, n: int) -> bool:
    return await settled(stack) >= n
