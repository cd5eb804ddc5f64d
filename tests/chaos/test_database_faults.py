"""Postgres goes away under load (through the proxy: the machine's cluster is
never stopped). The API answers 503 UNAVAILABLE, never 2xx for anything it
did not commit, never charges twice; when Postgres returns, the same paycore
process recovers without a restart and ends every open payment."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import asyncpg
import pytest

from paycore.core.journal import load_payment, settled

from tests.support.chaoskit import Answer, Load, record, run_audit, wait_all_final
from tests.support.helpers import sim_order

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]
OUTAGE = 5.0


async def _check_answers(chaos, answers: list[Answer]) -> dict[str, int]:
    """Every answer against what Postgres holds once it is back."""
    stack = chaos.stack
    rows = {r["merchant_order_no"]: r for r in await stack.pool.fetch(
        "select id, merchant_order_no, status, channel from payments where merchant_order_no = any($1::text[])",
        [a.order_no for a in answers])}
    counts = {"2xx": 0, "503": 0, "other": 0, "no_answer": 0, "503_but_committed": 0}
    refused_but_committed: list[str] = []
    for a in answers:
        row = rows.get(a.order_no)
        if 200 <= a.status < 300:
            counts["2xx"] += 1
            # a 2xx is only ever about something committed
            assert row is not None and row["id"] == a.payment["id"], a
        elif a.status == 503:
            counts["503"] += 1
            assert a.code == "UNAVAILABLE", a
            if row is not None:
                # the commit of the new payment itself may have reached Postgres while its answer was
                # lost with the connection: the payment then exists but never reached the channel,
                # and recovery ends it without money taken (checked below)
                counts["503_but_committed"] += 1
                refused_but_committed.append(row["id"])
        elif a.status == 0:
            counts["no_answer"] += 1
        else:
            counts["other"] += 1
            raise AssertionError(f"unexpected answer while the database was away: {a}")
    ids = [r["id"] for r in rows.values()]
    final = await wait_all_final(stack, ids, timeout=60)
    assert [pid for pid, s in final.items() if s in ("PENDING", "PROCESSING")] == []
    for r in rows.values():
        try:
            order = sim_order(stack, r["channel"], r["id"])
        except KeyError:
            assert final[r["id"]] != "SUCCEEDED", "succeeded without reaching the channel"
            continue
        assert order.pay_calls <= 1, f"{r['id']} charged {order.pay_calls} times"
        if r["id"] in refused_but_committed:   # "nothing accepted" held: no money moved
            assert order.pay_calls == 0 and final[r["id"]] != "SUCCEEDED", (r["id"], final[r["id"]])
    return counts


async def _recovers(chaos) -> float:
    """Seconds until a new payment succeeds again through the same process."""
    t0 = time.monotonic()
    load = Load(chaos.stack)
    while True:
        a = await load.pay_once("wechatpay")
        if a.status == 201 and a.payment["status"] == "SUCCEEDED":
            return time.monotonic() - t0
        assert time.monotonic() - t0 < 60, f"paycore did not recover: {a}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("mode", ["reset", "blackhole"])
async def test_database_down_under_load_is_503_and_recovers_without_restart(chaos, mode):
    stack = chaos.stack
    pid_before = stack.proc.pid
    pg = chaos.proxy("postgres")
    load = Load(stack).start()
    await asyncio.sleep(1.0)
    pg.set(mode)
    down_at = time.monotonic()
    await asyncio.sleep(OUTAGE)
    async with stack.session.get(stack.base + "/readyz") as r:
        ready_status = r.status
        ready = await r.json()
    pg.set("pass")
    up_at = time.monotonic()
    recovered_in = await _recovers(chaos)
    answers = await load.stop()
    during = [a for a in answers if down_at <= a.started < up_at]
    counts = await _check_answers(chaos, answers)
    # the outage is noticed by every request in flight while it lasted: answered 503 (a reset at once; a
    # blackhole once the write's timeout and the bounded re-read of its unknown outcome are spent), or,
    # for a blackhole, waited out and then answered; nothing is answered 2xx that is not committed
    # (_check_answers)
    in_flight = [a for a in answers if a.started < up_at and a.started + a.seconds > down_at]
    refused = [a for a in in_flight if a.status == 503]
    waited = [a for a in in_flight if a.status != 503 and a.started + a.seconds >= up_at]
    assert refused or (mode == "blackhole" and waited), ("the outage went unnoticed", len(during), len(in_flight))
    assert ready_status == 503 and ready["database"] is False
    assert stack.proc.poll() is None and stack.proc.pid == pid_before   # the same process, not restarted
    report = await run_audit(stack)
    assert report["missing"] == 0 and report["out_of_order"] == 0, report
    slowest_503 = max((a.seconds for a in refused), default=0.0)
    record(f"database_down_{mode}", payments=len(answers), answered_2xx=counts["2xx"], answered_503=counts["503"],
           committed_despite_503=counts["503_but_committed"], no_answer=counts["no_answer"],
           slowest_503_seconds=round(slowest_503, 2),
           median_503_seconds=round(sorted(a.seconds for a in refused)[len(refused) // 2], 3) if refused else None,
           seconds_to_recover=round(recovered_in, 2), outage_seconds=round(up_at - down_at, 1),
           events_missing=report["missing"], out_of_order=report["out_of_order"])


async def test_an_unknown_write_outcome_is_settled_within_its_budget(chaos):
    """When a journal write's answer is lost, the journal re-reads what the database holds before it
    may say "nothing accepted". Against a database that went silent, that re-read gives up after its
    budget (the till gets its 503), not after each try has waited out the pool's own, long timeouts."""
    stack = chaos.stack
    a = await Load(stack).pay_once("wechatpay")
    assert a.status == 201, a
    pid = a.payment["id"]
    eid = await stack.pool.fetchval("select event_id from events where payment_id = $1 order by seq limit 1", pid)
    pg = chaos.proxy("postgres")
    url = urlsplit(stack.db_url)
    through_proxy = url._replace(netloc=f"{url.username}@127.0.0.1:{pg.port}").geturl()
    # timeouts far longer than the budget: only the budget can end the re-read under a blackhole
    pool = await asyncpg.create_pool(through_proxy, min_size=1, max_size=2, command_timeout=120, timeout=120)
    try:
        p = await load_payment(pool, pid)
        assert await settled(pool, [(p, eid)]) == [True]              # written: found at once
        assert await settled(pool, [(p, "evt_never_written")], budget=0.5) == [False]
        pg.set("blackhole")
        got = await asyncio.wait_for(settled(pool, [(p, eid)], budget=1.0), 30)
        assert got is None    # could not be read: the caller answers UNAVAILABLE, recovery ends the payment
    finally:
        pg.set("pass")
        pool.terminate()
