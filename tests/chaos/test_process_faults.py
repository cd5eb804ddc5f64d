"""paycore is SIGKILLed while payments are PROCESSING (and while channel calls
are in flight): after a restart every one ends final, none is charged twice,
and what paycore says matches what the channel did."""
from __future__ import annotations

import asyncio
import secrets
import signal
import time

import pytest

from tests.support.chaoskit import money_matches, record, run_audit, wait_all_final
from tests.support.helpers import auth_code, sim_order

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

CHANNELS = ("wechatpay", "alipay", "unionpay", "bankwallet", "jdpay", "qqwallet")
# scenario (amount % 100): success, user paying then success, user paying forever, slower than the timeout
SCENARIOS = (0, 11, 12, 15)


async def test_killed_mid_payment_every_payment_ends_once_charged_at_most(chaos):
    stack = chaos.stack
    prefix = "kill" + secrets.token_hex(4)
    bodies = []
    for i, ch in enumerate(CHANNELS * 4):
        sc = SCENARIOS[i % len(SCENARIOS)]
        bodies.append({"merchant_order_no": f"{prefix}-{i}", "amount": 3000 + sc, "currency": "CNY",
                       "method": "barcode", "auth_code": auth_code(ch), "subject": "kill"})
    calls = [asyncio.create_task(stack.api("POST", "/v1/payments", b)) for b in bodies]
    await asyncio.sleep(0.6)   # SLOW calls are still inside the channel call, others PROCESSING
    processing = await stack.pool.fetchval(
        "select count(*) from payments where merchant_order_no like $1 and status = 'PROCESSING'", prefix + "%")
    stack.kill_paycore(signal.SIGKILL)
    killed_at = time.monotonic()
    answered = sum(1 for r in await asyncio.gather(*calls, return_exceptions=True) if not isinstance(r, Exception))
    await asyncio.to_thread(stack.start_paycore)
    restarted = time.monotonic() - killed_at

    rows = await stack.pool.fetch("select id, channel from payments where merchant_order_no like $1", prefix + "%")
    ids = [r["id"] for r in rows]
    final = await wait_all_final(stack, ids, timeout=60)
    ended = time.monotonic() - killed_at
    assert processing > 0, "nothing was PROCESSING when paycore died"
    assert [pid for pid, s in final.items() if s in ("PENDING", "PROCESSING")] == []
    charged_twice, mismatched = [], []
    for r in rows:
        try:
            order = sim_order(stack, r["channel"], r["id"])
        except KeyError:   # died before the channel heard of it: nothing to charge
            assert final[r["id"]] != "SUCCEEDED"
            continue
        if order.pay_calls > 1:
            charged_twice.append(r["id"])
        if not money_matches(final[r["id"]], order):
            mismatched.append((r["id"], final[r["id"]], str(order.state)))
    assert charged_twice == [] and mismatched == []
    report = await run_audit(stack)
    assert report["missing"] == 0 and report["out_of_order"] == 0, report
    statuses = sorted(final.values())
    record("paycore_killed_mid_payment", payments=len(rows), processing_when_killed=processing,
           answered_before_kill=answered, seconds_to_restart=round(restarted, 2),
           seconds_until_all_final=round(ended, 2),
           final={s: statuses.count(s) for s in set(statuses)}, charged_twice=len(charged_twice),
           events_missing=report["missing"], out_of_order=report["out_of_order"])
