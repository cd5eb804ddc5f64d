"""Money is never silently wrong (issue 11): each case of "what went wrong"
through the public API against the simulators' real behaviours (scenarios
21–25 of simulators/kit.py), and the operators' queue that catches the rest."""
from __future__ import annotations

import json

from tests.support.helpers import amount, auth_code, sim_order
from tests.support.ops import eventually, paycore_cli


async def _items(stack, payment_id: str, kind: str | None = None) -> list[dict]:
    rows = await stack.pool.fetch("select * from attention_items where payment_id = $1 order by id", payment_id)
    return [dict(r) for r in rows if kind is None or r["kind"] == kind]


async def _types(stack, payment_id: str) -> list[str]:
    return [e["type"] for e in await stack.events(payment_id)]


async def _refund_final(stack, refund_id: str) -> dict:
    async def final():
        r = (await stack.api("GET", f"/v1/refunds/{refund_id}")).body
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
    types = await _types(stack, pid)
    assert types[:5] == ["payment.created", "payment.closed", "payment.late_succeeded", "refund.created",
                         "attention.opened"], types
    assert [e["seq"] for e in await stack.events(pid)] == list(range(1, len(types) + 1))
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


async def test_refund_done_after_its_timeout_is_not_failed_and_cannot_be_repeated(stack):
    """Case 2: the refund's answer is lost and queries see nothing for a while. 'Not found' is not
    proof: the refund stays PROCESSING (its amount reserved), the same number is re-sent, and it
    ends SUCCEEDED; a second refund with a new number is refused instead of refunding twice."""
    r = await stack.pay(amount=amount(22), method="barcode", auth_code=auth_code("alipay"))
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
    assert sim_order(stack, "alipay", pid).refunded == total
    assert (await stack.api("GET", f"/v1/payments/{pid}")).body["refunded_amount"] == total


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


async def test_amount_that_differs_in_a_query_is_an_attention_item_not_a_success(stack):
    """Case 5: a query reports the payment paid with another amount: no SUCCEEDED, an amount_mismatch item."""
    r = await stack.pay(amount=amount(25), method="barcode", auth_code=auth_code("alipay"))
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
