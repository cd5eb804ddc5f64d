"""Case 4 of issue 11: Postgres is cut after the provider acted, before paycore wrote it.

The provider's answer is held back by its proxy (a slow link) while the test
watches the simulator's books; as soon as the provider has acted, the
Postgres proxy resets every connection, so the journal write that follows
the answer fails. "503 UNAVAILABLE" means "nothing accepted": it must not be
the answer once the provider has acted. And a commit whose answer was lost
(the connection dropped after COMMIT reached Postgres) is re-read, not
reported as "nothing accepted".
"""
from __future__ import annotations

import asyncio

import pytest

from paycore.core.journal import WRITE_BATCH
from tests.support.helpers import amount, auth_code, sim_order, sim_state
from tests.support.ops import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]
HOLD = 0.3     # seconds the provider's proxy holds each chunk (a call is a few chunks; its timeout is 2 s)


async def _until_provider_acted(check, what: str):
    return await eventually(check, timeout=10, interval=0.01, what=what)


async def test_refund_the_provider_accepted_is_not_503_when_its_write_fails(chaos):
    stack = chaos.stack
    ch = "alipay"
    pay = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(ch))
    pid, total = pay.body["id"], pay.body["amount"]
    assert pay.body["status"] == "SUCCEEDED", pay.body
    chaos.proxy(ch).set("delay", HOLD)
    req = asyncio.create_task(stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "c4", "amount": total}))
    await _until_provider_acted(lambda: sim_order(stack, ch, pid).refunds, "the provider to refund")
    chaos.proxy("postgres").set("reset")     # the answer is still on its way: its write will fail
    answer = await req
    chaos.proxy("postgres").set("pass")
    chaos.proxy(ch).set("pass")
    assert answer.status == 201, answer.body      # never 503 "nothing accepted": the provider acted
    assert answer.body["status"] == "PROCESSING" and answer.body["refund_no"] == "c4", answer.body

    async def done():
        r = await stack.api("GET", f"/v1/refunds/{answer.body['id']}")
        return r.body if r.status == 200 and r.body["status"] == "SUCCEEDED" else None
    await eventually(done, timeout=40, what="recovery to record the refund")
    again = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "c4", "amount": total})
    assert again.status == 200 and again.body["id"] == answer.body["id"], again.body   # the same refund
    assert again.body["status"] == "SUCCEEDED"
    assert sim_order(stack, ch, pid).refunded == total                               # refunded once


async def test_qr_order_the_provider_created_is_answered_with_its_code_when_its_write_fails(chaos):
    stack = chaos.stack
    ch = "wechatpay"
    fen = amount()
    before = set(sim_state(stack, ch).orders)
    body = {"merchant_order_no": f"c4qr{fen}", "amount": fen, "currency": "CNY", "method": "qr", "channel": ch,
            "subject": "case 4"}
    chaos.proxy(ch).set("delay", HOLD)
    req = asyncio.create_task(stack.api("POST", "/v1/payments", body))
    created = await _until_provider_acted(lambda: set(sim_state(stack, ch).orders) - before, "the provider's order")
    chaos.proxy("postgres").set("reset")
    answer = await req
    chaos.proxy("postgres").set("pass")
    chaos.proxy(ch).set("pass")
    assert answer.status == 201, answer.body
    (order_no,) = created
    assert answer.body["id"] == order_no and answer.body["qr_code"] == sim_state(stack, ch).orders[order_no].qr_code
    # the write was lost: an identical retry (once the first call has surely ended) asks the provider
    # again with the same number and records the code it answers
    await asyncio.sleep(2.5)
    retry = await eventually(lambda: stack.api("POST", "/v1/payments", body), timeout=20, what="a retry")
    assert retry.status == 200 and retry.body["id"] == order_no, retry.body
    assert retry.body["qr_code"] == answer.body["qr_code"]
    assert await stack.pool.fetchval("select qr_code from payments where id = $1", order_no) == retry.body["qr_code"]
    assert (await stack.customer_pays(ch, qr_code=retry.body["qr_code"])).get("state") == "SUCCESS"
    assert (await stack.wait_final(order_no, timeout=30))["status"] == "SUCCEEDED"


async def test_a_commit_whose_answer_was_lost_is_reread_not_reported_as_nothing_accepted(chaos):
    """The refund's own commit reaches Postgres, but the connection dies before its answer comes
    back (the statement waits on a row lock the test holds; the test resets the connection, then
    lets go). Before: 503 UNAVAILABLE — and recovery then sent the refund the merchant was told
    was never accepted. Now the journal re-reads what was written and the refund goes on."""
    stack = chaos.stack
    ch = "wechatpay"
    pay = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(ch))
    pid, total = pay.body["id"], pay.body["amount"]
    assert pay.body["status"] == "SUCCEEDED", pay.body
    async with stack.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("select 1 from payments where id = $1 for update", pid)
        req = asyncio.create_task(stack.api("POST", f"/v1/payments/{pid}/refunds",
                                            {"refund_no": "lost-answer", "amount": total}))
        await eventually(lambda: stack.pool.fetchval(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' "
            "and query like $1", "%" + WRITE_BATCH.strip()[:40] + "%"),   # the journal's one statement
            timeout=10, interval=0.01, what="the journal's write to wait on the lock")
        chaos.proxy("postgres").set("reset")    # the write's connection dies with its statement in Postgres
        await asyncio.sleep(0.05)
        await tx.commit()                       # the statement goes on and commits; nobody hears it
    chaos.proxy("postgres").set("pass")
    answer = await req
    assert answer.status == 201, answer.body
    assert answer.body["refund_no"] == "lost-answer"
    rows = await stack.pool.fetch("select id from refunds where payment_id = $1", pid)
    assert [r["id"] for r in rows] == [answer.body["id"]]
    await eventually(lambda: sim_order(stack, ch, pid).refunded == total, timeout=20, what="the refund sent once")
    assert len(sim_order(stack, ch, pid).refunds) == 1
