"""Money is never silently wrong (issue 11): each case of "what went wrong"
through the public API against the simulators' real behaviours (scenarios
21–25 of simulators/kit.py), and the operators' queue that catches the rest."""
from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.helpers import amount, auth_code, sim_order
from tests.support.ops import eventually, paycore_cli


async def _items(stack, payment_id: str, kind: str | None = None) -> list[dict]:
    rows = await stack.pool.fetch("select * from attention_items where payment_id = $1 order by id", payment_id)
    return [dict(r) for r in rows if kind is None or r["kind"] == kind]


async def _types(stack, payment_id: str) -> list[str]:
    return [e["type"] for e in await stack.events(payment_id)]


async def _refund_final(stack, refund_id: str, **who: str) -> dict:
    async def final():
        r = (await stack.api("GET", f"/v1/refunds/{refund_id}", **who)).body
        return r if r["status"] != "PROCESSING" else None
    return await eventually(final, timeout=30, what=f"refund {refund_id} final")


async def test_qr_cancelled_before_scan_cannot_be_paid_afterwards(stack):
    """Case 1: an Alipay precreated QR is 'not found' until scanned and a trade.close does not stop
    it; paycore cancels it with trade.cancel, whose tombstone does — so CLOSED means unpayable."""
    r = await stack.pay(amount=amount(21), method="qr", channel="alipay")
    assert r.status == 201 and r.body["qr_code"], r.body
    c = await stack.api("POST", f"/v1/payments/{r.body['id']}/cancel")
    assert c.status == 200 and c.body["status"] == "CLOSED", c.body
    paid = await stack.customer_pays("alipay", qr_code=r.body["qr_code"])
    assert "error" in paid, paid                       # the scan is refused: nobody is charged
    assert str(sim_order(stack, "alipay", r.body["id"]).state) not in ("SUCCESS", "REFUND")
    assert (await stack.api("GET", f"/v1/payments/{r.body['id']}")).body["status"] == "CLOSED"


async def test_qr_paid_after_close_is_late_money_journaled_refunded_and_queued(stack):
    """Case 1 where a close does not stop the scan (WeChat, a close racing it): the customer pays a
    CLOSED payment. That money becomes payment.late_succeeded (a merchant webhook), an attention item
    and an automatic refund of the same amount — not a log line."""
    r = await stack.pay(amount=amount(21), method="qr", channel="wechatpay", notify_url="http://127.0.0.1:9/hook")
    pid = r.body["id"]
    assert (await stack.api("POST", f"/v1/payments/{pid}/cancel")).body["status"] == "CLOSED"
    paid = await stack.customer_pays("wechatpay", qr_code=r.body["qr_code"])
    assert paid.get("state") == "SUCCESS", paid      # the provider took the money
    items = await eventually(lambda: _items(stack, pid, "late_success"), what="late_success item")
    assert items[0]["status"] == "OPEN" and items[0]["evidence"]["auto_refund"]
    # one read for both checks: the automatic refund's refund.succeeded may arrive between two reads
    events = await stack.events(pid)
    types = [e["type"] for e in events]
    assert types[:5] == ["payment.created", "payment.closed", "payment.late_succeeded", "refund.created",
                         "attention.opened"], types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    hooked = await stack.pool.fetchval("select count(*) from webhooks w join events e using (event_id) "
                                       "where w.payment_id = $1 and e.type = 'payment.late_succeeded'", pid)
    assert hooked == 1
    refund = await _refund_final(stack, items[0]["refund_id"])
    assert refund["status"] == "SUCCEEDED" and refund["amount"] == r.body["amount"]
    assert "refund.succeeded" in await _types(stack, pid)
    p = (await stack.api("GET", f"/v1/payments/{pid}")).body
    assert p["status"] == "CLOSED" and p["refunded_amount"] == r.body["amount"]
    assert sim_order(stack, "wechatpay", pid).refunded == r.body["amount"]   # the customer got it back once

    # the operators' queue: list, show, resolve through the engine, once
    assert (await stack.ops("GET", "/ops/attention", token="")).status == 401
    assert (await stack.ops("GET", "/ops/attention", token="wrong")).status == 401
    page = await stack.ops("GET", "/ops/attention?status=OPEN&kind=late_success")
    assert page.status == 200 and any(i["payment_id"] == pid for i in page.body["items"])
    item_id = items[0]["id"]
    shown = await stack.ops("GET", f"/ops/attention/{item_id}")
    assert shown.body["actions"] == ["refund", "acknowledge"]
    bad = await stack.ops("POST", f"/ops/attention/{item_id}/resolve",
                          {"action": "close", "actor": "ana", "reason": "x"})
    assert bad.status == 409 and bad.body["error"]["code"] == "INVALID_STATE"
    done = await stack.ops("POST", f"/ops/attention/{item_id}/resolve",
                           {"action": "acknowledge", "actor": "ana", "reason": "auto refund confirmed"})
    assert done.status == 200, done.body
    assert (done.body["status"], done.body["resolved_by"], done.body["resolution"]) == \
        ("RESOLVED", "ana", "acknowledge")
    again = await stack.ops("POST", f"/ops/attention/{item_id}/resolve",
                            {"action": "acknowledge", "actor": "ana", "reason": "twice"})
    assert again.status == 409
    assert (await _types(stack, pid))[-1] == "attention.resolved"
    shown = await paycore_cli(stack, "payment", "show", pid)
    assert shown.rc == 0 and "payment.late_succeeded" in shown.out and '"RESOLVED"' in shown.out


async def _calls(stack, payment_id: str, n: int = 1) -> list[dict]:
    """The payment's provider calls as an operator reads them (ops API), once ``n`` are recorded."""
    async def got():
        d = await stack.ops("GET", f"/ops/payments/{payment_id}")
        assert d.status == 200, d.body
        return d.body["channel_calls"] if len(d.body["channel_calls"]) >= n else None
    return await eventually(got, what=f"{n} channel calls of {payment_id}")


@pytest.mark.parametrize("ch", ["alipay", "wechatpay", "unionpay"])
async def test_refund_done_after_its_timeout_is_not_failed_and_cannot_be_repeated(stack, ch):
    """Case 2: the refund's answer is lost and queries see nothing for a while. 'Not found' is not
    proof: the refund stays PROCESSING (its amount reserved), the same number is re-sent, and it
    ends SUCCEEDED; a second refund with a new number is refused instead of refunding twice."""
    r = await stack.pay(amount=amount(22), method="barcode", auth_code=auth_code(ch))
    pid, total = r.body["id"], r.body["amount"]
    assert r.body["status"] == "SUCCEEDED"
    first = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "r1", "amount": total})
    assert first.status == 201 and first.body["status"] == "PROCESSING", first.body
    # recovery has asked at least once and been told "no such refund" (it is not visible for 4 s)
    await eventually(lambda: stack.pool.fetchval("select checks > 0 or status <> 'PROCESSING' from refunds "
                                                 "where id = $1", first.body["id"]),
                     what="a refund query that found nothing")
    assert (await stack.api("GET", f"/v1/refunds/{first.body['id']}")).body["status"] == "PROCESSING"
    second = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "r2", "amount": total})
    assert second.status == 422 and second.body["error"]["code"] == "REFUND_EXCEEDS_AMOUNT"
    assert (await _refund_final(stack, first.body["id"]))["status"] == "SUCCEEDED"
    assert sim_order(stack, ch, pid).refunded == total
    assert (await stack.api("GET", f"/v1/payments/{pid}")).body["refunded_amount"] == total
    # the operator sees each provider call: the pay, the refund whose answer was lost, its queries
    calls = await _calls(stack, pid, 3)
    assert calls[0]["flow"] == "pay" and (calls[0]["outcome"], calls[0]["answer"]) == ("ok", "SUCCEEDED")
    sent = [c for c in calls if c["flow"] == "refund"]
    assert sent[0]["outcome"] == "error" and sent[0]["refund_id"] == first.body["id"], calls
    assert any(c["flow"] == "refund_query" and c["answer"] == "NOT_FOUND" for c in calls), calls
    assert all(isinstance(c["latency_ms"], int) and c["at"] for c in calls)


async def test_reverse_that_failed_is_retried_until_done(stack):
    """Case 3: the cancel (reverse) of a paid barcode payment is committed as an intent before the
    provider is asked; the 503 'it will be retried' is now true — recovery reverses it."""
    r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("alipay"))
    pid = r.body["id"]
    assert r.body["status"] == "SUCCEEDED"
    await stack.sim("alipay", "POST", "/_sim/fault", {"mode": "http500"})
    try:
        c = await stack.api("POST", f"/v1/payments/{pid}/cancel")
        assert c.status == 503 and c.body["error"]["code"] == "CHANNEL_UNAVAILABLE", c.body
        intent = await stack.pool.fetchval("select intent from payments where id = $1", pid)
        assert intent == "reverse"
    finally:
        await stack.sim("alipay", "POST", "/_sim/fault", {"mode": None})
    final = await stack.wait_final(pid)

    async def reversed_():
        p = (await stack.api("GET", f"/v1/payments/{pid}")).body
        return p if p["status"] == "REVERSED" else None
    assert final["status"] in ("SUCCEEDED", "REVERSED")
    await eventually(reversed_, timeout=30, what="the reverse retried by recovery")
    assert str(sim_order(stack, "alipay", pid).state) == "REVOKED"


@pytest.mark.parametrize("ch", ["alipay", "wechatpay", "unionpay"])
async def test_amount_that_differs_in_a_query_is_an_attention_item_not_a_success(stack, ch):
    """Case 5: a query reports the payment paid with another amount: no SUCCEEDED, an amount_mismatch item."""
    r = await stack.pay(amount=amount(25), method="barcode", auth_code=auth_code(ch))
    pid = r.body["id"]
    assert r.body["status"] == "PROCESSING"
    items = await eventually(lambda: _items(stack, pid, "amount_mismatch"), what="amount_mismatch item")
    ev = items[0]["evidence"]
    assert ev["our_amount"] == r.body["amount"] and ev["channel_amount"] == r.body["amount"] - 1
    final = await stack.wait_final(pid, timeout=30)
    assert final["status"] != "SUCCEEDED"
    assert "payment.succeeded" not in await _types(stack, pid)


async def test_refund_of_a_channel_without_refund_query_goes_to_attention_then_operator(stack):
    """Case 8: Bestpay has no refund query. A refund whose outcome stays unknown past the channel's
    deadline is an attention item (not PROCESSING for ever); the operator resolves it through the
    engine with the CLI, and the reservation is released by a journaled refund.failed."""
    r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("bestpay"))
    pid, total = r.body["id"], r.body["amount"]
    assert r.body["status"] == "SUCCEEDED"
    await stack.sim("bestpay", "POST", "/_sim/fault", {"mode": "http500"})
    try:
        rf = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "b1", "amount": total})
        assert rf.status == 201 and rf.body["status"] == "PROCESSING", rf.body
        items = await eventually(lambda: _items(stack, pid, "outcome_unknown_past_deadline"), timeout=30,
                                 what="outcome_unknown item")
    finally:
        await stack.sim("bestpay", "POST", "/_sim/fault", {"mode": None})
    assert items[0]["refund_id"] == rf.body["id"]
    listed = await paycore_cli(stack, "attention", "list", "--json", "--kind", "outcome_unknown_past_deadline")
    assert listed.rc == 0 and any(json.loads(line)["id"] == items[0]["id"] for line in listed.out.splitlines())
    res = await paycore_cli(stack, "attention", "resolve", str(items[0]["id"]), "refund_failed", "--actor", "bo",
                            "--reason", "bestpay support: refund never arrived")
    assert res.rc == 0, res.err
    assert json.loads(res.out)["status"] == "RESOLVED"
    assert (await stack.api("GET", f"/v1/refunds/{rf.body['id']}")).body["status"] == "FAILED"
    assert (await _types(stack, pid))[-2:] == ["refund.failed", "attention.resolved"]
    assert sim_order(stack, "bestpay", pid).refunded == 0


async def test_breaker_probe_that_ends_in_an_unexpected_exception_is_released(stack):
    """Case 6: the channel fails until the breaker opens; its half-open probe then meets an answer
    the adapter cannot even parse (JSON nested 100,000 deep: Alipay's parser raises RecursionError,
    not a ChannelError). The probe is released, so the channel serves again once it is healthy
    instead of answering CHANNEL_UNAVAILABLE until the worker restarts."""
    ch = "alipay"
    await stack.sim(ch, "POST", "/_sim/fault", {"mode": "http500"})
    try:
        for _ in range(40):    # the test stack's breaker: 6 calls, half failing, opens it for 1 s
            r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(ch))
            if r.status == 503:
                break
        assert r.status == 503 and r.error == "CHANNEL_UNAVAILABLE", r.body
        await stack.sim(ch, "POST", "/_sim/fault", {"mode": "deep_json"})
        await asyncio.sleep(1.2)     # past open_seconds: the next payment is the probe
        probe = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(ch))
        assert probe.status == 201 and probe.body["status"] == "PROCESSING", probe.body   # outcome unknown
    finally:
        await stack.sim(ch, "POST", "/_sim/fault", {"mode": None})
    (call,) = await _calls(stack, probe.body["id"])
    assert (call["flow"], call["outcome"], call["code"], call["http_status"]) == ("pay", "error", "unexpected", 200)

    async def serves():
        again = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(ch))
        assert again.status in (201, 503), again.body
        return again if again.status == 201 else None
    again = await eventually(serves, timeout=10, interval=0.3, what="the channel to serve again")
    assert again.body["status"] == "SUCCEEDED"


async def test_merchant_late_payment_setting_holds_late_money_for_an_operator(stack):
    """`paycore merchant set-late-payment ID hold`: late money is journaled and queued but not
    refunded until an operator decides; `refund` (the default) refunds it at once."""
    added = await paycore_cli(stack, "merchant", "add", "m_late", "--late-payment", "hold")
    assert added.rc == 0, added.err
    secret = json.loads(added.out)["secret"]
    listed = await paycore_cli(stack, "merchant", "list")
    mine = next(json.loads(line) for line in listed.out.splitlines() if json.loads(line)["id"] == "m_late")
    assert mine["late_payment_action"] == "hold"
    for bad in (("m_late", "later"), ("m_nobody", "hold")):
        out = await paycore_cli(stack, "merchant", "set-late-payment", *bad)
        assert out.rc != 0 and out.err, out
    assert await stack.pool.fetchval("select late_payment_action from merchants where id = 'm_late'") == "hold"

    async def late_paid(order_no: str) -> str:
        body = {"merchant_order_no": order_no, "amount": amount(21), "currency": "CNY", "method": "qr",
                "channel": "wechatpay", "subject": "late"}
        r = await stack.api("POST", "/v1/payments", body, merchant="m_late", secret=secret)
        assert r.status == 201, r.body
        c = await stack.api("POST", f"/v1/payments/{r.body['id']}/cancel", merchant="m_late", secret=secret)
        assert c.body["status"] == "CLOSED", c.body
        assert (await stack.customer_pays("wechatpay", qr_code=r.body["qr_code"])).get("state") == "SUCCESS"
        await eventually(lambda: _items(stack, r.body["id"], "late_success"), what="late_success item")
        return r.body["id"]

    held = await late_paid("late-hold")
    (item,) = await _items(stack, held, "late_success")
    assert item["evidence"]["held"] is True and item["refund_id"] is None
    assert await stack.pool.fetchval("select count(*) from refunds where payment_id = $1", held) == 0
    res = await paycore_cli(stack, "attention", "resolve", str(item["id"]), "refund", "--actor", "ops",
                            "--reason", "customer asked for it back")
    assert res.rc == 0, res.err
    refund_id = await stack.pool.fetchval("select id from refunds where payment_id = $1", held)
    assert (await _refund_final(stack, refund_id, merchant="m_late", secret=secret))["status"] == "SUCCEEDED"
    assert sim_order(stack, "wechatpay", held).refunded == item["evidence"]["amount"]

    switched = await paycore_cli(stack, "merchant", "set-late-payment", "m_late", "refund")
    assert switched.rc == 0 and json.loads(switched.out)["late_payment_action"] == "refund", switched.err
    refunded = await late_paid("late-refund")
    (item,) = await _items(stack, refunded, "late_success")
    assert item["evidence"]["held"] is False and item["refund_id"]
    assert (await _refund_final(stack, item["refund_id"], merchant="m_late", secret=secret))["status"] == "SUCCEEDED"
