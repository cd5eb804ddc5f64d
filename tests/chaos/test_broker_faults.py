"""The broker goes away while payments flow: payments keep succeeding, the
relay backs off (neither hangs nor spins), the outbox grows and then drains,
and every event reaches Kafka in order — also across a paycore restart."""
from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.support.chaoskit import Load, metric, metrics_text, outbox_depth, record, run_audit, wait_outbox_empty

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]
OUTAGE = 4.0   # seconds each way of cutting the broker off


async def _during(load: Load, seconds: float) -> tuple[int, int]:
    """Let the load run ``seconds``; returns (payments answered, largest outbox depth seen)."""
    n0 = len(load.answers)
    deepest = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        deepest = max(deepest, await outbox_depth(load.stack))
        await asyncio.sleep(0.2)
    return len(load.answers) - n0, deepest


async def test_broker_down_under_load_payments_go_on_and_every_event_reaches_kafka(chaos):
    stack = chaos.stack
    kafka = chaos.proxy("kafka")
    before = metric(await metrics_text(stack), "paycore_relay_errors_total", kind="kafka")
    load = Load(stack).start()
    await asyncio.sleep(1.0)

    # 1. frozen broker (SIGSTOP): connections open, nothing answers
    accepted0 = kafka.accepted
    stack.broker.freeze()
    paid_frozen, deepest_frozen = await _during(load, OUTAGE)
    stack.broker.thaw()
    # 2. cut off at the network: every connection reset, then a partition that answers nothing
    kafka.set("reset")
    paid_reset, deepest_reset = await _during(load, OUTAGE / 2)
    kafka.set("blackhole")
    paid_hole, deepest_hole = await _during(load, OUTAGE / 2)
    kafka.set("pass")
    connects_during_outage = kafka.accepted - accepted0
    restored = time.monotonic()
    await asyncio.sleep(1.0)
    answers = await load.stop()
    drained_after = await wait_outbox_empty(stack, timeout=90)
    drained = time.monotonic() - restored

    text = await metrics_text(stack)
    relay_errors = metric(text, "paycore_relay_errors_total", kind="kafka") - before
    succeeded = [a for a in answers if a.status == 201 and a.payment["status"] == "SUCCEEDED"]
    # payments never noticed: each one was answered and succeeded, during the outage too
    assert [a for a in answers if a.status != 201] == []
    assert len(succeeded) == len(answers) and paid_frozen > 0 and paid_reset > 0 and paid_hole > 0
    # the outbox took the events while Kafka could not
    assert max(deepest_frozen, deepest_reset, deepest_hole) > 0
    # the relay noticed and backed off: a handful of failed rounds and reconnects, not a busy loop
    assert relay_errors >= 1
    assert relay_errors < 4 * OUTAGE / 0.2 and connects_during_outage < 200
    report = await run_audit(stack)
    assert report["missing"] == 0 and report["out_of_order"] == 0, report
    record("broker_down_under_load", payments=len(answers), paid_while_frozen=paid_frozen,
           paid_while_reset=paid_reset, paid_while_partitioned=paid_hole,
           outbox_max=max(deepest_frozen, deepest_reset, deepest_hole), relay_errors=relay_errors,
           broker_connects_during_outage=connects_during_outage, seconds_to_drain=round(drained, 2),
           seconds_to_drain_after_load=round(drained_after, 2), events_missing=report["missing"],
           out_of_order=report["out_of_order"], duplicated=report["duplicated"],
           events_audited=report["postgres_events"])


async def test_paycore_restarted_while_the_broker_is_away_still_drains(chaos):
    stack = chaos.stack
    kafka = chaos.proxy("kafka")
    kafka.set("blackhole")
    load = Load(stack, workers=3)
    for _ in range(12):
        a = await load.pay_once("wechatpay")
        assert a.status == 201 and a.payment["status"] == "SUCCEEDED"
    held = await outbox_depth(stack)
    assert held > 0
    stack.kill_paycore(signal.SIGKILL)
    await asyncio.to_thread(stack.start_paycore)
    for _ in range(12):
        a = await load.pay_once("alipay")
        assert a.status == 201 and a.payment["status"] == "SUCCEEDED"
    held_after_restart = await outbox_depth(stack)
    assert held_after_restart >= held
    kafka.set("pass")
    drained = await wait_outbox_empty(stack, timeout=90)
    report = await run_audit(stack)
    assert report["missing"] == 0 and report["out_of_order"] == 0, report
    record("restart_while_broker_away", payments=24, outbox_held=held_after_restart,
           seconds_to_drain=round(drained, 2), events_missing=report["missing"],
           out_of_order=report["out_of_order"], duplicated=report["duplicated"])
