"""The core payment flows through the public API, for WeChat Pay and Alipay,
against real Postgres, the real broker and the simulators over HTTP."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.support.helpers import amount, auth_code, doctored, post_notification, sim_order

BARCODE_CHANNELS = ["wechatpay", "alipay"]


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_barcode_success_is_journaled(stack, channel):
    r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(channel))
    assert r.status == 201, r.body
    p = r.body
    assert p["status"] == "SUCCEEDED" and p["channel"] == channel
    assert p["id"].startswith("pay_") and p["channel_trade_no"] and p["paid_at"]
    events = await stack.events(p["id"])
    assert [e["type"] for e in events] == ["payment.created", "payment.succeeded"]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[-1]["payment"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_userpaying_then_success_after_queries(stack, channel):
    r = await stack.pay(amount=amount(11), method="barcode", auth_code=auth_code(channel))
    assert r.status == 201 and r.body["status"] == "PROCESSING", r.body
    final = await stack.wait_final(r.body["id"])
    assert final["status"] == "SUCCEEDED"
    assert sim_order(stack, channel, r.body["id"]).queries >= 3


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_userpaying_forever_ends_reversed(stack, channel):
    r = await stack.pay(amount=amount(12), method="barcode", auth_code=auth_code(channel))
    assert r.body["status"] == "PROCESSING"
    final = await stack.wait_final(r.body["id"])
    assert final["status"] == "REVERSED"
    order = sim_order(stack, channel, r.body["id"])
    assert order.reverse_calls >= 1 and str(order.state) in ("REVOKED", "CLOSED")


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_declined_ends_failed_with_channel_reason(stack, channel):
    r = await stack.pay(amount=amount(13), method="barcode", auth_code=auth_code(channel))
    assert r.status == 201
    assert r.body["status"] == "FAILED"
    assert r.body["failure"]["code"] == "DECLINED"
    assert r.body["failure"]["channel_code"]


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_system_error_then_query_finds_success(stack, channel):
    r = await stack.pay(amount=amount(14), method="barcode", auth_code=auth_code(channel))
    assert r.body["status"] == "PROCESSING"
    assert (await stack.wait_final(r.body["id"]))["status"] == "SUCCEEDED"


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_slower_than_timeout_then_query_finds_success(stack, channel):
    r = await stack.pay(amount=amount(15), method="barcode", auth_code=auth_code(channel))
    assert r.body["status"] == "PROCESSING"
    assert (await stack.wait_final(r.body["id"]))["status"] == "SUCCEEDED"
    assert sim_order(stack, channel, r.body["id"]).pay_calls == 1   # never charged twice


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_qr_pending_then_notification_succeeds(stack, channel):
    r = await stack.pay(amount=amount(), method="qr", channel=channel)
    assert r.status == 201 and r.body["status"] == "PENDING", r.body
    assert r.body["qr_code"]
    await stack.customer_pays(channel, qr_code=r.body["qr_code"])
    final = await stack.wait_final(r.body["id"])
    assert final["status"] == "SUCCEEDED"
    events = await stack.events(r.body["id"])
    assert [e["type"] for e in events] == ["payment.created", "payment.succeeded"]


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_duplicate_notifications_change_nothing(stack, channel):
    r = await stack.pay(amount=amount(16), method="qr", channel=channel)
    await stack.customer_pays(channel, qr_code=r.body["qr_code"])
    assert (await stack.wait_final(r.body["id"]))["status"] == "SUCCEEDED"
    await asyncio.sleep(0.6)   # the simulator sends three; let them all land
    order = sim_order(stack, channel, r.body["id"])
    status, _ = await post_notification(stack, channel, order)   # and one more by hand
    assert status == 200
    events = await stack.events(r.body["id"])
    assert [e["type"] for e in events] == ["payment.created", "payment.succeeded"]


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_forged_notifications_are_rejected_and_change_nothing(stack, channel):
    r = await stack.pay(amount=amount(), method="qr", channel=channel)
    pid = r.body["id"]
    order = sim_order(stack, channel, pid)
    from simulators.kit import OrderState
    paid = doctored(order, state=OrderState.SUCCESS)
    paid.paid_at = order.created_at
    # bad signature, wrong amount, unknown order: each refused
    status, _ = await post_notification(stack, channel, paid, tamper="body")
    assert status >= 400 or status == 200
    status_amt, _ = await post_notification(stack, channel, doctored(paid, amount=order.amount + 100))
    unknown = doctored(paid, out_trade_no="pay_" + secrets.token_hex(12))
    status_unknown, _ = await post_notification(stack, channel, unknown)
    got = await stack.api("GET", f"/v1/payments/{pid}")
    assert got.body["status"] == "PENDING"
    assert [e["type"] for e in await stack.events(pid)] == ["payment.created"]
    # the acknowledgement says "not accepted" in the provider's own way
    assert status_amt != 200 or channel == "alipay"
    metrics = await _metrics(stack)
    assert f'paycore_notifications_rejected_total{{channel="{channel}",reason="amount_mismatch"}}' in metrics
    assert f'paycore_notifications_rejected_total{{channel="{channel}",reason="unknown_order"}}' in metrics
    assert f'paycore_notifications_rejected_total{{channel="{channel}",reason="bad_signature"}}' in metrics \
        or f'channel="{channel}",reason="malformed"' in metrics
    del status_unknown


async def _metrics(stack) -> str:
    async with stack.session.get(stack.base + "/metrics") as r:
        return await r.text()


async def test_identical_retry_answers_200_and_changed_409(stack):
    body = {"merchant_order_no": "retry-" + secrets.token_hex(6), "amount": amount(), "currency": "CNY",
            "method": "barcode", "auth_code": auth_code("wechatpay"), "subject": "retry"}
    first = await stack.api("POST", "/v1/payments", body)
    assert first.status == 201
    again = await stack.api("POST", "/v1/payments", dict(reversed(list(body.items()))))
    assert again.status == 200 and again.body["id"] == first.body["id"]
    changed = await stack.api("POST", "/v1/payments", dict(body, amount=body["amount"] + 1))
    assert changed.status == 409 and changed.error == "IDEMPOTENCY_CONFLICT"


async def test_twenty_concurrent_identical_creates_make_one_payment(stack):
    body = {"merchant_order_no": "conc-" + secrets.token_hex(6), "amount": amount(), "currency": "CNY",
            "method": "barcode", "auth_code": auth_code("alipay")}
    replies = await asyncio.gather(*(stack.api("POST", "/v1/payments", body) for _ in range(20)))
    assert sorted(r.status for r in replies).count(201) == 1
    assert all(r.status in (200, 201) for r in replies)
    assert len({r.body["id"] for r in replies}) == 1
    n = await stack.pool.fetchval("select count(*) from payments where merchant_order_no = $1",
                                  body["merchant_order_no"])
    assert n == 1
    final = await stack.wait_final(replies[0].body["id"])
    assert final["status"] == "SUCCEEDED"
    assert sim_order(stack, "alipay", final["id"]).pay_calls == 1


@pytest.mark.parametrize("channel", BARCODE_CHANNELS)
async def test_partial_refunds_up_to_amount_then_422(stack, channel):
    r = await stack.pay(amount=10000, method="barcode", auth_code=auth_code(channel))
    pid = r.body["id"]
    assert r.body["status"] == "SUCCEEDED"
    parts = [3000, 5000, 2000]
    for i, part in enumerate(parts):
        rr = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": f"r{i}", "amount": part})
        assert rr.status == 201, rr.body
        assert rr.body["id"].startswith("rfd_")
        final = rr.body
        for _ in range(50):
            if final["status"] != "PROCESSING":
                break
            await asyncio.sleep(0.1)
            final = (await stack.api("GET", f"/v1/refunds/{rr.body['id']}")).body
        assert final["status"] == "SUCCEEDED"
    over = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "r9", "amount": 1})
    assert over.status == 422 and over.error == "REFUND_EXCEEDS_AMOUNT"
    p = (await stack.api("GET", f"/v1/payments/{pid}")).body
    assert p["refunded_amount"] == 10000
    same = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "r0", "amount": 3000})
    assert same.status == 200
    types = [e["type"] for e in await stack.events(pid)]
    assert types.count("refund.created") == 3 and types.count("refund.succeeded") == 3


async def test_refund_declined_by_channel_frees_the_amount(stack):
    r = await stack.pay(amount=amount(18), method="barcode", auth_code=auth_code("alipay"))
    pid = r.body["id"]
    assert r.body["status"] == "SUCCEEDED"
    rr = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "x", "amount": r.body["amount"]})
    assert rr.status == 201 and rr.body["status"] == "FAILED"
    p = (await stack.api("GET", f"/v1/payments/{pid}")).body
    assert p["refunded_amount"] == 0


async def test_bad_signature_old_timestamp_reused_nonce_are_401(stack):
    body = {"merchant_order_no": "auth-" + secrets.token_hex(6), "amount": 100, "currency": "CNY",
            "method": "barcode", "auth_code": auth_code("wechatpay")}
    bad = await stack.api("POST", "/v1/payments", body, secret="not-the-secret")
    assert bad.status == 401 and bad.error == "UNAUTHENTICATED"
    import time
    old = await stack.api("POST", "/v1/payments", body, ts=int(time.time()) - 301)
    assert old.status == 401
    nonce = secrets.token_hex(10)
    first = await stack.api("GET", "/v1/payments?merchant_order_no=nothing-here", nonce=nonce)
    assert first.status == 404
    replay = await stack.api("GET", "/v1/payments?merchant_order_no=nothing-here", nonce=nonce)
    assert replay.status == 401
    unknown = await stack.api("POST", "/v1/payments", body, merchant="m_nobody")
    assert unknown.status == 401
    assert await stack.pool.fetchval("select count(*) from payments where merchant_order_no = $1",
                                     body["merchant_order_no"]) == 0


async def test_a_replayed_create_is_401_and_charges_nothing(stack):
    """A create's nonce is recorded by the payment's own journal statement (no round trip of its own):
    the replay of a create — after it, at the same moment, after a read that used the nonce, after a
    refused create — is 401 and writes nothing, and a read replaying a create's nonce is 401 too."""
    def body(tag: str, amount_fen: int = 0) -> dict:
        return {"merchant_order_no": f"replay-{tag}-" + secrets.token_hex(5), "amount": amount_fen or amount(),
                "currency": "CNY", "method": "barcode", "auth_code": auth_code("wechatpay")}

    async def rows(order_no: str) -> int:
        return await stack.pool.fetchval("select count(*) from payments where merchant_order_no = $1", order_no)

    # after it: the same signed request again
    b, nonce = body("after"), secrets.token_hex(12)
    first = await stack.api("POST", "/v1/payments", b, nonce=nonce)
    assert first.status == 201 and first.body["status"] == "SUCCEEDED", first.body
    again = await stack.api("POST", "/v1/payments", b, nonce=nonce)
    assert again.status == 401 and again.error == "UNAUTHENTICATED", again.body
    assert "nonce" in again.body["error"]["message"]
    assert sim_order(stack, "wechatpay", first.body["id"]).pay_calls == 1
    assert [e["type"] for e in await stack.events(first.body["id"])] == ["payment.created", "payment.succeeded"]
    # the nonce is in the table every worker checks: a read replaying it is refused as well
    read = await stack.api("GET", f"/v1/payments/{first.body['id']}", nonce=nonce)
    assert read.status == 401

    # at the same moment: two identical requests in flight (most often in one journal batch)
    b, nonce = body("twin"), secrets.token_hex(12)
    got = await asyncio.gather(*(stack.api("POST", "/v1/payments", b, nonce=nonce) for _ in range(2)))
    assert sorted(g.status for g in got) == [201, 401], [(g.status, g.body) for g in got]
    assert await rows(b["merchant_order_no"]) == 1
    won = next(g for g in got if g.status == 201)
    assert sim_order(stack, "wechatpay", won.body["id"]).pay_calls == 1

    # a nonce a read used first: the create is refused and no payment exists
    b, nonce = body("read-first"), secrets.token_hex(12)
    assert (await stack.api("GET", "/v1/payments?merchant_order_no=nothing-here", nonce=nonce)).status == 404
    late = await stack.api("POST", "/v1/payments", b, nonce=nonce)
    assert late.status == 401 and await rows(b["merchant_order_no"]) == 0

    # a create refused before its write (amount over the limit) still records its nonce
    b, nonce = body("refused", amount_fen=20_000_000), secrets.token_hex(12)
    refused = await stack.api("POST", "/v1/payments", b, nonce=nonce)
    assert refused.status == 422, refused.body
    assert (await stack.api("POST", "/v1/payments", b, nonce=nonce)).status == 401
    assert await stack.pool.fetchval("select count(*) from nonces where merchant_id = $1 and nonce = $2",
                                     stack.merchant_id, nonce) == 1


async def test_long_poll_answers_when_final(stack):
    r = await stack.pay(amount=amount(11), method="barcode", auth_code=auth_code("wechatpay"))
    got = await stack.api("GET", f"/v1/payments/{r.body['id']}?wait=20")
    assert got.status == 200 and got.body["status"] == "SUCCEEDED"
    by_order = await stack.api("GET", f"/v1/payments?merchant_order_no={r.body['merchant_order_no']}")
    assert by_order.body["id"] == r.body["id"]
    bad = await stack.api("GET", f"/v1/payments/{r.body['id']}?wait=31")
    assert bad.status == 400 and bad.error == "INVALID_REQUEST" and bad.body["error"]["field"] == "wait"


async def test_cancel_pending_closes_and_processing_reverses(stack):
    qr = await stack.pay(amount=amount(), method="qr", channel="wechatpay")
    closed = await stack.api("POST", f"/v1/payments/{qr.body['id']}/cancel", {})
    assert closed.status == 200 and closed.body["status"] == "CLOSED"
    again = await stack.api("POST", f"/v1/payments/{qr.body['id']}/cancel", {})
    assert again.status == 409 and again.error == "INVALID_STATE"
    paying = await stack.pay(amount=amount(12), method="barcode", auth_code=auth_code("alipay"))
    rev = await stack.api("POST", f"/v1/payments/{paying.body['id']}/cancel", {})
    assert rev.status == 200 and rev.body["status"] == "REVERSED"
    done = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("wechatpay"))
    rev2 = await stack.api("POST", f"/v1/payments/{done.body['id']}/cancel", {})
    assert rev2.status == 200 and rev2.body["status"] == "REVERSED"


async def test_expired_qr_is_closed_by_recovery(stack):
    r = await stack.pay(amount=amount(), method="qr", channel="alipay", expire_in=10)
    assert r.body["status"] == "PENDING"
    final = await stack.wait_final(r.body["id"], timeout=25)
    assert final["status"] == "CLOSED"
