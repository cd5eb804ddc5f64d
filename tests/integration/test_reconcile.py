"""Reconciliation against the channels' own daily statements, with
discrepancies seeded on purpose on both sides, each of which must be found.

The simulators produce each provider's statement format from their order
book; the statement is fetched through the channel adapter by the real
``paycore reconcile`` command. The stack is shared with other tests, so
assertions are about the payments made here (the statement holds others).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from channels.base import Method, PayRequest, TradeStatus
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from simulators.kit import OrderState
from paycore import config as config_mod
from paycore.core.models import new_id
from tests.support.helpers import business_today, amount, auth_code, sim_order, sim_state
from tests.support.ops import eventually, paycore_cli


def today() -> str:
    return business_today().isoformat()


async def paid(stack, channel: str, fen: int | None = None) -> str:
    r = await stack.pay(amount=fen or amount(), method="barcode", auth_code=auth_code(channel))
    assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
    return r.body["id"]


async def refunded(stack, payment_id: str, fen: int, refund_no: str) -> str:
    rr = await stack.api("POST", f"/v1/payments/{payment_id}/refunds", {"refund_no": refund_no, "amount": fen})
    assert rr.status == 201, rr.body

    async def done():
        r = await stack.api("GET", f"/v1/refunds/{rr.body['id']}")
        return r.body["status"] == "SUCCEEDED"
    await eventually(done, what="the refund to succeed")
    return rr.body["id"]


def by_id(report: dict) -> dict[tuple[str, str], dict]:
    return {(d["out_trade_no"], d["out_refund_no"] or ""): d for d in report["discrepancies"]}


async def test_seeded_discrepancies_are_each_found_and_stored(stack):
    ch = "wechatpay"
    # clean: a payment and a partial refund of it
    clean = await paid(stack, ch)
    clean_refund = await refunded(stack, clean, 150, "r1")

    # we have it, the channel does not: its order vanishes from the provider's books
    ours_only = await paid(stack, ch)
    sim_state(stack, ch).orders.pop(sim_order(stack, ch, ours_only).out_trade_no)

    # the channel has it, we do not: an order placed at the provider past paycore
    cfg = config_mod.load(stack.config_path, env=stack.env)
    theirs_only = new_id("pay")
    async with ProviderClient() as client:
        adapter = ADAPTERS[ch](cfg.channels[ch], ChannelHttp(client, ch, 5.0))
        res = await adapter.pay(PayRequest(
            out_trade_no=theirs_only, amount=4321, method=Method.BARCODE, subject="not through paycore",
            notify_url=f"{stack.base}/notify/{ch}", expire_at=datetime.now(timezone.utc) + timedelta(minutes=5),
            auth_code=auth_code(ch)))
        await adapter.aclose()
    assert res.status is TradeStatus.SUCCEEDED

    # same payment, different amount at the channel
    amount_off = await paid(stack, ch, 2500)
    sim_order(stack, ch, amount_off).amount = 2600

    # declined for us, paid according to the channel
    declined = await stack.pay(amount=amount(13), method="barcode", auth_code=auth_code(ch))
    assert declined.body["status"] == "FAILED", declined.body
    status_off = declined.body["id"]
    order = sim_order(stack, ch, status_off)
    order.state, order.paid_at = OrderState.SUCCESS, datetime.now(timezone.utc)

    out = await paycore_cli(stack, "reconcile", "--channel", ch, "--date", today(), "--json")
    assert out.rc == 1 and out.out.startswith("{"), out.err          # 1: discrepancies found
    report = json.loads(out.out)
    found = by_id(report)

    assert found[(ours_only, "")]["result"] == "missing_channel"
    assert found[(ours_only, "")]["our_status"] == "SUCCEEDED"
    assert found[(theirs_only, "")]["result"] == "missing_ours"
    assert found[(theirs_only, "")]["channel_amount"] == 4321
    assert found[(amount_off, "")]["result"] == "amount_mismatch"
    assert (found[(amount_off, "")]["our_amount"], found[(amount_off, "")]["channel_amount"]) == (2500, 2600)
    assert found[(status_off, "")]["result"] == "status_mismatch"
    assert (found[(status_off, "")]["our_status"], found[(status_off, "")]["channel_status"]) == \
        ("FAILED", "SUCCEEDED")
    assert (clean, "") not in found and (clean, clean_refund) not in found, "the clean ones match"
    assert report["summary"]["matched"] >= 2   # the clean payment and its refund at least
    for result in ("missing_ours", "missing_channel", "amount_mismatch", "status_mismatch"):
        assert report["summary"][result] >= 1

    # stored: the run and each discrepancy
    run = await stack.pool.fetchrow("select * from reconciliation_runs where id = $1", report["run_id"])
    assert run["channel"] == ch and run["status"] == "DONE" and run["missing_ours"] == report["summary"]["missing_ours"]
    items = {r["out_trade_no"]: r["result"] for r in await stack.pool.fetch(
        "select * from reconciliation_items where run_id = $1", report["run_id"])}
    assert items[ours_only] == "missing_channel" and items[theirs_only] == "missing_ours"
    assert items[amount_off] == "amount_mismatch" and items[status_off] == "status_mismatch"

    # each discrepancy is a state, not only a report line: the payment we had FAILED that the
    # statement shows paid is late money exactly like a late notification; the others are items
    assert "payment.late_succeeded" in [e["type"] for e in await stack.events(status_off)]
    (late,) = await stack.pool.fetch("select * from attention_items where payment_id = $1", status_off)
    assert late["kind"] == "late_success" and late["evidence"]["source"] == "statement" and late["refund_id"]
    refund = await eventually(lambda: stack.pool.fetchrow("select * from refunds where id = $1 and "
                                                          "status = 'SUCCEEDED'", late["refund_id"]),
                              what="the late money refunded")
    assert refund["amount"] == declined.body["amount"]
    for pid, result in ((ours_only, "missing_channel"), (amount_off, "amount_mismatch")):
        (item,) = await stack.pool.fetch("select * from attention_items where payment_id = $1", pid)
        assert item["kind"] == "reconciliation_discrepancy" and item["evidence"]["result"] == result, dict(item)
        assert item["evidence"]["run_id"] == report["run_id"]
        assert "attention.opened" in [e["type"] for e in await stack.events(pid)]
    (unknown,) = await stack.pool.fetch("select * from attention_items where payment_id is null and "
                                        "evidence->>'out_trade_no' = $1", theirs_only)
    assert unknown["kind"] == "reconciliation_discrepancy" and unknown["evidence"]["channel_amount"] == 4321
    bad = await stack.ops("POST", f"/ops/attention/{unknown['id']}/resolve",
                          {"action": "requery", "actor": "ana", "reason": "x"})
    assert bad.status == 409, bad.body
    ok = await stack.ops("POST", f"/ops/attention/{unknown['id']}/resolve",
                         {"action": "acknowledge", "actor": "ana", "reason": "a test order placed past paycore"})
    assert ok.status == 200 and ok.body["status"] == "RESOLVED" and ok.body["resolved_by"] == "ana", ok.body
    # a second stored run finds the same discrepancies and opens nothing new while they are open
    mine = [ours_only, amount_off, status_off]
    before = await stack.pool.fetchval("select count(*) from attention_items where payment_id = any($1::text[])",
                                       mine)
    again = await paycore_cli(stack, "reconcile", "--channel", ch, "--date", today(), "--json")
    assert again.rc == 1, again.err
    assert await stack.pool.fetchval("select count(*) from attention_items where payment_id = any($1::text[])",
                                     mine) == before
    assert await stack.pool.fetchval("select count(*) from refunds where payment_id = $1", status_off) == 1

    # the readable table names each of them with its result
    table = await paycore_cli(stack, "reconcile", "--channel", ch, "--date", today(), "--no-store")
    assert table.rc == 1
    lines = table.out.splitlines()
    for pid, result in ((ours_only, "missing_channel"), (theirs_only, "missing_ours"),
                        (amount_off, "amount_mismatch"), (status_off, "status_mismatch")):
        assert any(pid in ln and ln.startswith(result) for ln in lines), (pid, table.out)
    assert "26.00" in table.out and "25.00 SUCCEEDED" in table.out
    print("\n" + table.out)

    # exported: the API processes sample the latest run into metrics
    async def exported():
        async with stack.session.get(stack.base + "/metrics") as r:
            text = await r.text()
        return [ln for ln in text.splitlines()
                if ln.startswith(f'paycore_reconciliation_lines{{channel="{ch}",result="missing_ours"}}')]
    (line,) = await eventually(exported, what="reconciliation metrics")
    assert float(line.split()[-1]) == report["summary"]["missing_ours"]


async def test_a_clean_day_with_a_reversal_and_a_refund_matches_at_alipay(stack):
    """Alipay lists a reversal (撤销) as a refund line without a refund number: it must
    match our REVERSED payment, not show up as an unknown refund."""
    ch = "alipay"
    a = await paid(stack, ch)
    await refunded(stack, a, 100, "x1")
    b = await paid(stack, ch)
    c = await stack.api("POST", f"/v1/payments/{b}/cancel", {})
    assert c.status == 200 and c.body["status"] == "REVERSED", c.body

    out = await paycore_cli(stack, "reconcile", "--channel", ch, "--date", today(), "--json")
    assert out.rc in (0, 1), out.err
    report = json.loads(out.out)
    mine = [d for d in report["discrepancies"] if d["out_trade_no"] in (a, b)]
    assert mine == [], mine
    assert report["summary"]["matched"] >= 3


async def test_unknown_channel_is_a_clear_error(stack):
    out = await paycore_cli(stack, "reconcile", "--channel", "nosuchpay", "--date", today())
    assert out.rc == 2 and "not configured" in out.err
