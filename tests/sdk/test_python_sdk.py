"""The Python SDK (sdk/python, ``paycore-client``) against the real stack:
barcode success, user paying then success by long-poll, decline as a typed
exception, a lost answer retried without a second charge, refunds, typed 4xx
errors never retried, webhooks verified and tampered ones refused, and the
examples run as a merchant runs them."""
from __future__ import annotations

import asyncio
import json
import secrets
import time

import httpx
import pytest
from aiohttp import web

import paycore_client as pc
from paycore_client import AsyncPaycoreClient, IdempotentRetry, PaycoreClient
from paycore_client.signing import sign
from paycore_client.webhooks import parse_signature
from tests.sdk.conftest import lose_first_answer, run_example
from tests.support.helpers import amount, auth_code, sim_order
from tests.support.ops import paycore_cli

FAST = IdempotentRetry(max_attempts=4, initial_backoff=0.05, max_backoff=0.2)


def order_no() -> str:
    return "sdk-" + secrets.token_hex(8)


def counting(stack, secret: str | None = None, **kw) -> tuple[AsyncPaycoreClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(request)
    http = httpx.AsyncClient(event_hooks={"request": [hook]})
    return AsyncPaycoreClient(stack.base, stack.merchant_id, secret or stack.secret, http=http, **kw), sent


async def test_barcode_payment_succeeds_with_typed_models(client):
    no = order_no()
    req = pc.PaymentCreate(merchant_order_no=no, amount=amount(), method="barcode", auth_code=auth_code("alipay"),
                           subject="2 coffees", store_id="s01", terminal_id="t07", metadata={"cart": "c-1"})
    p = await client.create_payment(req)
    assert isinstance(p, pc.Payment) and p.status == "SUCCEEDED" and p.is_final
    assert p.id.startswith("pay_") and p.channel == "alipay" and p.merchant_order_no == no
    assert p.amount == req.amount and isinstance(p.amount, int) and p.refunded_amount == 0
    assert p.failure is None and p.channel_trade_no and p.metadata == {"cart": "c-1"}
    assert p.paid_at is not None and p.paid_at.tzinfo is not None
    # an identical retry answers the same payment; read back by id and by order number
    assert (await client.create_payment(req)).id == p.id
    assert (await client.get_payment(p.id)).status == "SUCCEEDED"
    assert (await client.find_payment(no)).id == p.id


async def test_sync_client_pays_too(stack):
    def pay() -> pc.Payment:
        with PaycoreClient(stack.base, stack.merchant_id, stack.secret) as c:
            return c.create_payment(merchant_order_no=order_no(), amount=amount(), method="barcode",
                                    auth_code=auth_code("wechatpay"))
    p = await asyncio.to_thread(pay)     # the simulators answer from this loop meanwhile
    assert p.status == "SUCCEEDED" and p.channel == "wechatpay"


async def test_user_paying_then_success_by_long_poll(client):
    p = await client.create_payment(merchant_order_no=order_no(), amount=amount(11), method="barcode",
                                    auth_code=auth_code("wechatpay"))
    assert p.status == "PROCESSING" and not p.is_final
    started = time.monotonic()
    final = await client.wait_for_final(p.id, timeout=30)
    assert final.id == p.id and final.status == "SUCCEEDED" and final.paid_at is not None
    assert time.monotonic() - started < 30


async def test_qr_pending_paid_by_customer_then_long_poll(stack, client):
    p = await client.create_payment(merchant_order_no=order_no(), amount=amount(), method="qr", channel="alipay")
    assert p.status == "PENDING" and p.qr_code
    waiting = asyncio.create_task(client.wait_for_final(p.id, timeout=30))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "the long-poll waits for the customer"
    await stack.customer_pays("alipay", qr_code=p.qr_code)
    assert (await waiting).status == "SUCCEEDED"


async def test_decline_is_a_typed_exception(client):
    with pytest.raises(pc.PaymentDeclinedError) as e:
        await client.create_payment(merchant_order_no=order_no(), amount=amount(13), method="barcode",
                                    auth_code=auth_code("alipay"))
    assert isinstance(e.value, pc.PaymentFailedError)
    assert e.value.payment.status == "FAILED" and e.value.failure_code == "DECLINED" and e.value.channel_code
    # the caller who prefers a value gets the FAILED payment
    p = await client.get_payment(e.value.payment.id)
    assert p.status == "FAILED" and p.failure.code == "DECLINED"


async def test_lost_answer_is_retried_with_the_same_order_no_and_charges_once(stack, client, paycore_proxy):
    no = order_no()
    async with AsyncPaycoreClient(f"http://127.0.0.1:{paycore_proxy.port}", stack.merchant_id, stack.secret,
                                  retry=FAST, timeout=20) as flaky:
        paying = asyncio.create_task(flaky.create_payment(merchant_order_no=no, amount=amount(), method="barcode",
                                                          auth_code=auth_code("wechatpay")))
        created = await lose_first_answer(paycore_proxy, client, no)
        p = await paying
    assert paycore_proxy.accepted >= 2, "the first answer was lost, so the SDK connected again"
    assert p.id == created and p.status == "SUCCEEDED"
    assert sim_order(stack, "wechatpay", p.id).pay_calls == 1, "charged once"
    assert (await client.find_payment(no)).id == p.id


async def test_refund_and_refund_limits(client):
    p = await client.create_payment(merchant_order_no=order_no(), amount=amount(yuan=20), method="barcode",
                                    auth_code=auth_code("wechatpay"))
    r = await client.create_refund(p.id, refund_no="r1", amount=500, reason="one cup")
    assert isinstance(r, pc.Refund) and r.id.startswith("rfd_") and r.payment_id == p.id and r.amount == 500
    assert r.status in ("PROCESSING", "SUCCEEDED")
    assert (await client.create_refund(p.id, pc.RefundCreate("r1", 500, "one cup"))).id == r.id   # idempotent
    assert (await client.get_refund(r.id)).refund_no == "r1"
    with pytest.raises(pc.RefundExceedsAmountError) as e:
        await client.create_refund(p.id, refund_no="r2", amount=p.amount)
    assert e.value.status == 422 and e.value.code == "REFUND_EXCEEDS_AMOUNT"
    for _ in range(50):
        if (await client.get_payment(p.id)).refunded_amount == 500:
            break
        await asyncio.sleep(0.1)
    assert (await client.get_payment(p.id)).refunded_amount == 500


async def test_cancel_closes_a_pending_payment(client):
    p = await client.create_payment(merchant_order_no=order_no(), amount=amount(), method="qr", channel="wechatpay")
    assert (await client.cancel_payment(p.id)).status == "CLOSED"
    with pytest.raises(pc.InvalidStateError):
        await client.cancel_payment(p.id)


async def test_4xx_errors_are_typed_and_never_retried(stack):
    c, sent = counting(stack, retry=FAST)
    async with c:
        no = order_no()
        p = await c.create_payment(merchant_order_no=no, amount=amount(), method="barcode",
                                   auth_code=auth_code("wechatpay"))
        cases = [
            (pc.IdempotencyConflictError, 409, c.create_payment(merchant_order_no=no, amount=p.amount + 1,
                                                                method="barcode", auth_code=auth_code("wechatpay"))),
            (pc.UnknownAuthCodeError, 422, c.create_payment(merchant_order_no=order_no(), amount=100,
                                                            method="barcode", auth_code="999999999999999999")),
            (pc.InvalidRequestError, 400, c.create_payment(merchant_order_no=order_no(), amount=100, method="qr",
                                                           channel="alipay", expire_in=1)),
            (pc.NotFoundError, 404, c.get_payment("pay_doesnotexist")),
        ]
        for cls, status, call in cases:
            before = len(sent)
            with pytest.raises(cls) as e:
                await call
            assert e.value.status == status and e.value.code == cls.code and e.value.message
            assert len(sent) - before == 1, f"{cls.__name__} was sent again"
        assert e.value.field is None
    bad, sent = counting(stack, secret="not-the-secret", retry=FAST)
    async with bad:
        with pytest.raises(pc.AuthenticationError):
            await bad.get_payment(p.id)
    assert len(sent) == 1


async def test_invalid_request_names_the_field(client):
    with pytest.raises(pc.InvalidRequestError) as e:
        await client.create_payment(merchant_order_no=order_no(), amount=100, method="qr", channel="alipay",
                                    expire_in=1)
    assert e.value.field == "expire_in"


def test_money_is_integer_fen():
    with pytest.raises(TypeError):
        pc.PaymentCreate(merchant_order_no="o", amount=12.34, method="barcode")   # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pc.RefundCreate(refund_no="r", amount=True)   # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pc.RefundCreate(refund_no="r", amount=0)


# -- webhooks ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def hooks():
    """A merchant endpoint that keeps what paycore POSTs, raw."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=200)
    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        await runner.cleanup()


async def delivered(got: list, payment_id: str, timeout: float = 15.0) -> tuple[dict[str, str], bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for headers, body in got:
            if payment_id.encode() in body:
                return headers, body
        await asyncio.sleep(0.1)
    raise AssertionError(f"no webhook for {payment_id}")


async def test_webhook_verified_and_tampered_refused(stack, client, hooks):
    url, got = hooks
    p = await client.create_payment(merchant_order_no=order_no(), amount=amount(), method="barcode",
                                    auth_code=auth_code("alipay"), notify_url=url)
    headers, body = await delivered(got, p.id)
    event = pc.verify_webhook(headers, body, stack.secret)
    assert event.type == "payment.succeeded" and event.payment.id == p.id and event.payment.status == "SUCCEEDED"
    assert event.event_id.startswith("evt_") and event.seq >= 2
    # any header spelling, and a dict of secrets by key id during a rotation
    lower = {k.lower(): v for k, v in headers.items()}
    assert pc.verify_webhook(lower, body, {"old": stack.secret, "new": "s2"}).event_id == event.event_id

    for tampered in (body.replace(b"SUCCEEDED", b"SUCCEEDEX"), body.replace(p.id.encode(), b"pay_0other0"),
                     body + b" "):
        with pytest.raises(pc.WebhookVerificationError):
            pc.verify_webhook(headers, tampered, stack.secret)
    with pytest.raises(pc.WebhookVerificationError):
        pc.verify_webhook(headers, body, "another-merchant-secret")
    with pytest.raises(pc.WebhookVerificationError):   # a replay long after
        pc.verify_webhook(headers, body, stack.secret, tolerance=300, now=time.time() + 3600)
    with pytest.raises(pc.WebhookVerificationError):
        pc.verify_webhook({}, body, stack.secret)


async def test_webhooks_across_a_secret_rotation_verify_with_the_sdk(stack, hooks):
    """What paycore sends during a rotation's grace period (kid of the new secret, a v1 with each)
    verifies for a merchant holding only the old secret, only the new one, or both by key id."""
    url, got = hooks
    mid = "m_sdkrot_" + secrets.token_hex(3)
    added = await paycore_cli(stack, "merchant", "add", mid)
    assert added.rc == 0, added.err
    old = json.loads(added.out)["secret"]
    rot = await paycore_cli(stack, "merchant", "rotate-secret", mid, "--grace", "1h")
    assert rot.rc == 0, rot.err
    rotated = json.loads(rot.out)
    new = rotated["secret"]
    assert (rotated["kid"], rotated["previous_kid"]) == ("k2", "k1") and new != old
    async with AsyncPaycoreClient(stack.base, mid, old) as merchant_not_yet_deployed:
        p = await merchant_not_yet_deployed.create_payment(merchant_order_no=order_no(), amount=amount(),
                                                           method="barcode", auth_code=auth_code("alipay"),
                                                           notify_url=url)
    headers, body = await delivered(got, p.id)
    t, kid, macs = parse_signature(headers["X-Paycore-Signature"])
    assert kid == "k2" and len(macs) == 2 and abs(t - time.time()) < 300
    for held in (old, new, {"k1": old}, {"k2": new}, {"k1": old, "k2": new}):
        assert pc.verify_webhook(headers, body, held).payment.id == p.id
    for wrong in ("another-secret", {"k2": "another-secret"}, {"k1": "another", "k9": "secrets"}):
        with pytest.raises(pc.WebhookVerificationError):
            pc.verify_webhook(headers, body, wrong)


def test_webhook_key_ids():
    body = json.dumps({"event_id": "evt_1", "type": "payment.succeeded", "seq": 2,
                       "occurred_at": "2024-01-01T00:00:00Z",
                       "payment": {"id": "pay_1", "merchant_id": "m", "merchant_order_no": "o", "amount": 1,
                                   "currency": "CNY", "method": "qr", "channel": "alipay",
                                   "status": "SUCCEEDED"}}).encode()
    keys = {"k1": "old-secret", "k2": "new-secret"}
    header = pc.sign_webhook("new-secret", body, kid="k2")
    assert ",kid=k2," in header
    assert pc.verify_webhook({"X-Paycore-Signature": header}, body, keys).payment.id == "pay_1"
    assert pc.verify_webhook({"X-Paycore-Signature": header}, body, "new-secret").seq == 2
    with pytest.raises(pc.WebhookVerificationError):   # kid names a key that did not sign
        pc.verify_webhook({"X-Paycore-Signature": pc.sign_webhook("old-secret", body, kid="k2")}, body, keys)
    # a key id the receiver has not deployed: any secret it holds may match a v1, none does here
    with pytest.raises(pc.WebhookVerificationError):
        pc.verify_webhook({"X-Paycore-Signature": pc.sign_webhook("newest-secret", body, kid="k9")}, body, keys)
    # … and during the grace period the old secret's v1 is there too
    overlap = pc.sign_webhook("newest-secret", body, kid="k3") + ",v1=" + \
        pc.sign_webhook("new-secret", body).split("v1=")[1]
    assert pc.verify_webhook({"X-Paycore-Signature": overlap}, body, keys).event_id == "evt_1"
    both = pc.sign_webhook("old-secret", body) + ",v1=" + pc.sign_webhook("new-secret", body).split("v1=")[1]
    assert pc.verify_webhook({"X-Paycore-Signature": both}, body, "new-secret").event_id == "evt_1"


# -- what the real stack cannot show: 5xx retries and the planned settlement endpoints ---------
@pytest.fixture
async def fake_platform():
    """A stand-in for endpoints paycore does not serve yet (settlements) and
    for 5xx answers; it records every request."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    state = {"fail": 0}
    lines = [{"kind": "payment", "id": f"pay_{i}", "channel": "alipay", "amount": 1000 + i, "fee": 6,
              "net": 994 + i, "occurred_at": "2024-05-01T02:00:00Z"} for i in range(5)]

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        if state["fail"] > 0:
            state["fail"] -= 1
            return web.json_response({"error": {"code": "UNAVAILABLE", "message": "db down"}}, status=503)
        if request.path == "/v1/payments":
            body = json.loads(seen[-1][3])
            return web.json_response({"id": "pay_x", "merchant_id": "m_test", "currency": "CNY", "channel": "alipay",
                                      "status": "SUCCEEDED", **{k: body[k] for k in ("merchant_order_no", "amount",
                                                                                       "method")}}, status=201)
        if request.path == "/v1/settlements/2024-05-01/lines":
            start = int(request.query.get("cursor", "0"))
            nxt = start + 2 if start + 2 < len(lines) else None
            return web.json_response({"lines": lines[start:start + 2], "next_cursor": str(nxt) if nxt else None})
        return web.json_response({"error": {"code": "NOT_FOUND", "message": "no"}}, status=404)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        yield url, seen, state
    finally:
        await runner.cleanup()


async def test_5xx_is_retried_with_the_same_body_and_a_fresh_signature(fake_platform):
    url, seen, state = fake_platform
    state["fail"] = 2
    async with AsyncPaycoreClient(url, "m_test", "s3cret", retry=FAST) as c:
        p = await c.create_payment(merchant_order_no="o-1", amount=1234, method="barcode", auth_code="28123")
    assert p.status == "SUCCEEDED" and p.merchant_order_no == "o-1"
    assert len(seen) == 3
    assert len({body for *_, body in seen}) == 1, "every attempt carries the same merchant_order_no and body"
    assert json.loads(seen[0][3])["merchant_order_no"] == "o-1"
    assert len({h["X-Paycore-Nonce"] for _, _, h, _ in seen}) == 3, "a nonce is never reused"
    for method, path, h, body in seen:
        assert h["X-Paycore-Signature"] == sign("s3cret", method, path, h["X-Paycore-Timestamp"],
                                                h["X-Paycore-Nonce"], body)
    state["fail"] = 10
    async with AsyncPaycoreClient(url, "m_test", "s3cret", retry=FAST) as c:
        with pytest.raises(pc.UnavailableError) as e:
            await c.get_payment("pay_x")
    assert e.value.status == 503 and len(seen) == 3 + FAST.max_attempts


async def test_settlement_lines_are_paginated(fake_platform):
    url, seen, _ = fake_platform
    async with AsyncPaycoreClient(url, "m_test", "s3cret") as c:
        got = [line async for line in c.iter_settlement_lines("2024-05-01")]
    assert [line.id for line in got] == [f"pay_{i}" for i in range(5)]
    assert all(isinstance(line.amount, int) and line.net == line.amount - line.fee for line in got)
    assert [path for _, path, _, _ in seen] == ["/v1/settlements/2024-05-01/lines",
                                                "/v1/settlements/2024-05-01/lines?cursor=2",
                                                "/v1/settlements/2024-05-01/lines?cursor=4"]

    def sync_lines() -> list[str]:
        with PaycoreClient(url, "m_test", "s3cret") as s:
            return [line.id for line in s.iter_settlement_lines("2024-05-01")]
    assert await asyncio.to_thread(sync_lines) == [f"pay_{i}" for i in range(5)]


# -- the examples, run as a merchant runs them ---------------------------------------------------
async def lines_of(proc: asyncio.subprocess.Process, n: int, timeout: float = 60.0) -> list[dict]:
    out = []
    for _ in range(n):
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        assert line, (await proc.stderr.read()).decode()[-2000:]
        out.append(json.loads(line))
    return out


async def test_example_pos_barcode_scan_pay_long_poll_refund(stack):
    proc = await run_example(stack, "pos_barcode.py", "--amount", str(amount(11)), "--refund", "100")
    proc.stdin.write(auth_code("wechatpay").encode() + b"\n")
    await proc.stdin.drain()
    waiting, final, refund = await lines_of(proc, 3)
    assert waiting["step"] == "waiting" and waiting["status"] == "PROCESSING"
    assert final == dict(waiting, step="final", status="SUCCEEDED")
    assert refund["step"] == "refund" and refund["amount"] == 100 and refund["status"] in ("PROCESSING", "SUCCEEDED")
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_example_pos_barcode_declined(stack):
    proc = await run_example(stack, "pos_barcode.py", "--amount", str(amount(13)))
    proc.stdin.write(auth_code("alipay").encode() + b"\n")
    await proc.stdin.drain()
    (declined,) = await lines_of(proc, 1)
    assert declined["step"] == "declined" and declined["reason"] == "DECLINED"
    assert await asyncio.wait_for(proc.wait(), 30) == 2


async def test_example_wallet_in_app_payment(stack):
    proc = await run_example(stack, "wallet_inapp.py", "--amount", str(amount()), "--timeout", "60")
    (to_app,) = await lines_of(proc, 1)
    assert to_app["status"] == "PENDING" and to_app["pay_params"]["prepayid"]
    await stack.customer_pays("wechatpay", prepay_id=to_app["pay_params"]["prepayid"])   # the phone app pays
    (final,) = await lines_of(proc, 1)
    assert final["step"] == "final" and final["id"] == to_app["id"] and final["status"] == "SUCCEEDED"
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_example_webhook_receiver(stack, client, hooks):
    proc = await run_example(stack, "webhook_receiver.py", "--port", "0")
    try:
        (listening,) = await lines_of(proc, 1)
        url = listening["listening"]
        p = await client.create_payment(merchant_order_no=order_no(), amount=amount(), method="barcode",
                                        auth_code=auth_code("wechatpay"), notify_url=url)
        (verified,) = await lines_of(proc, 1)
        assert verified == {"verified": True, "event_id": verified["event_id"], "type": "payment.succeeded",
                            "payment_id": p.id, "status": "SUCCEEDED", "refund_id": None}
        # a real delivery (from the other endpoint) with its body changed is refused
        other = await client.create_payment(merchant_order_no=order_no(), amount=amount(), method="barcode",
                                            auth_code=auth_code("wechatpay"), notify_url=hooks[0])
        headers, body = await delivered(hooks[1], other.id)
        async with httpx.AsyncClient() as h:
            r = await h.post(url, content=body.replace(b"SUCCEEDED", b"SUCCEEDEX"),
                             headers={"X-Paycore-Signature": headers["X-Paycore-Signature"]})
            assert r.status_code == 400
            (refused,) = await lines_of(proc, 1)
            assert refused["verified"] is False
            r = await h.post(url, content=body, headers={"X-Paycore-Signature": headers["X-Paycore-Signature"]})
            assert r.status_code == 200
    finally:
        proc.terminate()
        await proc.wait()
