"""Merchant webhooks as a merchant sees them: signed events on a real HTTP
endpoint, retried until it answers 2xx, kept in Postgres across a paycore
restart, listed and replayed by an operator with ``paycore webhooks``.

The test stack shortens the retry schedule to fractions of a second through
``[webhooks] schedule`` (same number of attempts as production).
"""
from __future__ import annotations

import asyncio

import hashlib
import hmac
import json
import secrets
import signal
import time

import orjson
import pytest

from paycore.ops.webhooks import MAX_ATTEMPTS, SCHEDULE, verify_signature
from tests.support.helpers import amount, auth_code
from tests.support.ops import Receiver, eventually, paycore_cli


def merchant_verifies(secret: str, body: bytes, header: str) -> bool:
    """The merchant's side, written from api.md: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>; during a
    secret rotation's grace period there is a v1 per valid secret (docs/deploy.md): any one may match, and
    elements it does not know (kid) are ignored."""
    parts = [part.split("=", 1) for part in header.split(",")]
    t = next(v for k, v in parts if k == "t")
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1") and abs(time.time() - int(t)) < 300


async def pay_with_hook(stack, receiver: Receiver, kind: str, behaviour, channel: str = "wechatpay"):
    """A paid barcode payment whose webhook goes to ``/hook/<kind>-<random>``, answered per ``behaviour``."""
    name = f"{kind}-{secrets.token_hex(4)}"
    receiver.behaviour[name] = behaviour
    r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(channel),
                        notify_url=receiver.url(name))
    assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
    return name, r.body["id"]


async def webhook_row(stack, event_id: str):
    return await stack.pool.fetchrow("select * from webhooks where event_id = $1", event_id)


async def recorded_row(stack, event_id: str):
    """The delivery's row once the dispatcher has recorded an outcome: the receiver answers
    (and the test sees it) before the dispatcher writes what it answered."""
    async def done():
        r = await webhook_row(stack, event_id)
        return r if r is not None and r["status"] != "PENDING" else None
    return await eventually(done, timeout=10, what="the dispatcher to record the delivery")


async def test_final_payment_and_refund_webhooks_are_signed_event_json(stack, receiver):
    name, pid = await pay_with_hook(stack, receiver, "ok", 200)
    (d,) = await eventually(lambda: receiver.received(name), what="the payment webhook")

    assert merchant_verifies(stack.secret, d.body, d.headers["X-Paycore-Signature"])
    assert verify_signature(stack.secret.encode(), d.body, d.headers["X-Paycore-Signature"])
    assert not merchant_verifies(stack.secret, d.body.replace(b"SUCCEEDED", b"SUCCEEDEX"),
                                 d.headers["X-Paycore-Signature"]), "a changed body must not verify"
    assert not merchant_verifies("another-merchant-secret", d.body, d.headers["X-Paycore-Signature"])

    event = orjson.loads(d.body)
    assert event["type"] == "payment.succeeded"
    assert event["payment"]["id"] == pid and event["payment"]["status"] == "SUCCEEDED"
    assert d.headers["X-Paycore-Event-Id"] == event["event_id"]
    # exactly the journal's event
    stored = await stack.pool.fetchval("select payload from events where event_id = $1", event["event_id"])
    assert stored == event

    rr = await stack.api("POST", f"/v1/payments/{pid}/refunds", {"refund_no": "w1", "amount": 100})
    assert rr.status == 201, rr.body
    got = await eventually(lambda: len(receiver.received(name)) >= 2 and receiver.received(name),
                           what="the refund webhook")
    refund_event = orjson.loads(got[1].body)
    assert refund_event["type"] == "refund.succeeded" and refund_event["refund"]["id"] == rr.body["id"]
    assert merchant_verifies(stack.secret, got[1].body, got[1].headers["X-Paycore-Signature"])
    row = await recorded_row(stack, event["event_id"])
    assert row["status"] == "DELIVERED" and row["attempts"] == 1


async def test_a_failing_receiver_gets_retries_until_it_answers_2xx(stack, receiver):
    name, _ = await pay_with_hook(stack, receiver, "flaky", [500, 503, 200], channel="alipay")
    got = await eventually(lambda: [d for d in receiver.received(name) if d.status == 200],
                           what="a successful delivery")
    assert len(got) == 1
    attempts = receiver.received(name)
    assert [d.status for d in attempts] == [500, 503, 200]
    assert [d.headers["X-Paycore-Delivery-Attempt"] for d in attempts] == ["1", "2", "3"]
    assert len({d.headers["X-Paycore-Event-Id"] for d in attempts}) == 1, "one event, delivered again"
    assert all(merchant_verifies(stack.secret, d.body, d.headers["X-Paycore-Signature"]) for d in attempts)
    row = await recorded_row(stack, attempts[0].headers["X-Paycore-Event-Id"])
    assert row["status"] == "DELIVERED" and row["attempts"] == 3 and row["last_status"] == 200


async def test_pending_webhooks_survive_a_paycore_restart(stack, receiver):
    name, pid = await pay_with_hook(stack, receiver, "down", 503)
    await eventually(lambda: receiver.received(name), what="a first (refused) attempt")

    async def attempt_recorded():   # the receiver answered 503; the dispatcher records the attempt just after
        return await stack.pool.fetchrow("select * from webhooks where payment_id = $1 and attempts >= 1", pid)
    await eventually(attempt_recorded, timeout=10, what="the refused attempt to be recorded")
    stack.kill_paycore(signal.SIGKILL)
    try:
        row = await stack.pool.fetchrow("select * from webhooks where payment_id = $1", pid)
        assert row["status"] == "PENDING" and row["attempts"] >= 1, dict(row)
        receiver.behaviour[name] = 200
        restarted_at = time.time()
    finally:
        await asyncio.to_thread(stack.start_paycore)
    ok = await eventually(lambda: [d for d in receiver.received(name) if d.status == 200], timeout=30,
                          what="delivery after the restart")
    assert ok[0].at >= restarted_at
    assert orjson.loads(ok[0].body)["payment"]["id"] == pid

    async def delivered():   # the receiver answered; the dispatcher records it just after
        return await stack.pool.fetchrow("select * from webhooks where payment_id = $1 and status = 'DELIVERED'",
                                         pid)
    await eventually(delivered, timeout=10, what="the delivery to be recorded")


async def test_a_given_up_webhook_is_listed_and_replayed_by_the_operator(stack, receiver):
    name, pid = await pay_with_hook(stack, receiver, "gone", 500)

    async def failed():
        return await stack.pool.fetchrow("select * from webhooks where payment_id = $1 and status = 'FAILED'", pid)
    row = await eventually(failed, timeout=30, what="the dispatcher to give up")
    assert row["attempts"] == MAX_ATTEMPTS == len(receiver.received(name))

    listed = await paycore_cli(stack, "webhooks", "list", "--status", "FAILED", "--payment", pid, "--json")
    assert listed.rc == 0, listed.err
    (item,) = [json.loads(line) for line in listed.out.splitlines()]
    assert item["event_id"] == row["event_id"] and item["attempts"] == MAX_ATTEMPTS
    table = await paycore_cli(stack, "webhooks", "list", "--payment", pid)
    assert "FAILED" in table.out and row["event_id"] in table.out

    receiver.behaviour[name] = 204
    replay = await paycore_cli(stack, "webhooks", "replay", row["event_id"])
    assert replay.rc == 0 and json.loads(replay.out) == {"replayed": [row["id"]]}, replay
    await eventually(lambda: [d for d in receiver.received(name) if d.status == 204],
                     what="the replayed delivery")
    again = await recorded_row(stack, row["event_id"])
    assert again["status"] == "DELIVERED" and again["replays"] == 1 and again["attempts"] == 1

    text = await _metrics(stack)
    assert metric_value(text, 'paycore_webhook_deliveries_total{outcome="gave_up"}') >= 1
    assert metric_value(text, 'paycore_webhook_deliveries_total{outcome="retry"}') >= MAX_ATTEMPTS - 1


def test_the_production_schedule_is_at_least_8_attempts_over_an_hour():
    assert MAX_ATTEMPTS >= 8
    assert sum(SCHEDULE) >= 3600
    assert list(SCHEDULE) == sorted(SCHEDULE), "backoff never shrinks"


def metric_value(text: str, series: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(series + " ")]
    return float(line.split()[-1])


async def _metrics(stack) -> str:
    async with stack.session.get(stack.base + "/metrics") as r:
        return await r.text()

