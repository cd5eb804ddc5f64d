"""Channel notifications with every kind of corruption, for every channel that
sends them: bad signature, stale timestamp (where the provider has one),
wrong amount, wrong merchant, unknown order, a truncated or undecryptable
resource (the AES-GCM channels), and the replay of an old valid one after the
payment changed. Each is refused (or, for a valid replay, acknowledged without
effect), changes nothing in payments or events, and is counted by reason.

Notifications are built by the channel's own simulator (validly signed with
the provider's key) from a doctored copy of the simulator's order, so only the
corruption under test is wrong.
"""
from __future__ import annotations

import base64
import dataclasses
import secrets
import time
from contextlib import contextmanager
from typing import Any
from unittest import mock

import aiohttp
import orjson
import pytest

from channels.base import Method
from channels.registry import ADAPTERS
from simulators.kit import OrderState, SimSettings
from tests.support.helpers import amount, auth_code, doctored, post_notification, sim_order, sim_state

CHANNELS = sorted(ADAPTERS)
TIMESTAMPED = {"wechatpay", "douyinpay", "bankwallet", "ecny"}     # providers whose notifications carry a time
AES_GCM = {"wechatpay", "douyinpay"}
SIGNATURE_REASONS = {"bad_signature", "malformed", "undecryptable"}
MERCHANT_REASONS = {"merchant_mismatch", "unknown_merchant", "wrong_merchant"}


async def _metrics(stack) -> str:
    async with stack.session.get(stack.base + "/metrics") as r:
        return await r.text()


def _rejected(text: str, channel: str) -> dict[str, float]:
    out: dict[str, float] = {}
    prefix = "paycore_notifications_rejected_total{"
    for line in text.splitlines():
        if line.startswith(prefix) and f'channel="{channel}"' in line:
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def _snapshot(stack, pid: str) -> tuple[Any, ...]:
    row = await stack.pool.fetchrow("select status, seq, refunded_amount, channel_trade_no, paid_at, amount "
                                    "from payments where id = $1", pid)
    events = await stack.pool.fetch("select event_id from events where payment_id = $1 order by seq", pid)
    return tuple(row), tuple(e["event_id"] for e in events)


async def _post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=body, headers=headers) as r:
            return r.status, await r.read()


@contextmanager
def _provider_claims(state, **changes: str):
    """The simulator signs as usual but names another merchant (mch_id / app_id)."""
    undo: list[tuple[Any, str, Any]] = []
    for b in {state.notify_builder, state.refund_notify_builder} - {None}:
        owner = getattr(b, "__self__", None)
        if owner is not None:
            if isinstance(getattr(owner, "settings", None), SimSettings):
                undo.append((owner, "settings", owner.settings))
                owner.settings = dataclasses.replace(owner.settings, **changes)
            if isinstance(getattr(owner, "merchant", None), str):
                undo.append((owner, "merchant", owner.merchant))
                owner.merchant = changes["mch_id"]
        for cell in getattr(b, "__closure__", None) or ():
            if isinstance(cell.cell_contents, SimSettings):
                undo.append((cell, "cell_contents", cell.cell_contents))
                cell.cell_contents = dataclasses.replace(cell.cell_contents, **changes)
    try:
        yield
    finally:
        for obj, attr, old in reversed(undo):
            setattr(obj, attr, old)


def _unknown(order):
    """The same order under an id paycore never issued (mapped forms included)."""
    return doctored(order, out_trade_no="pay_" + secrets.token_hex(12), channel_trade_no="X" + secrets.token_hex(10))


def _target_method(channel: str) -> Method | None:
    methods = ADAPTERS[channel].methods
    return next((m for m in (Method.QR, Method.APP, Method.H5) if m in methods), None)


@pytest.mark.parametrize("channel", CHANNELS)
async def test_corrupted_notifications_are_refused_and_change_nothing(stack, channel):
    state = sim_state(stack, channel)
    assert state.notify_builder is not None, f"{channel} sends no notifications"
    method = _target_method(channel)
    if method is not None:   # a payment waiting for the customer: the notification would end it
        r = await stack.pay(amount=amount(yuan=37), method=str(method), channel=channel)
        assert r.status == 201 and r.body["status"] == "PENDING", r.body
    else:                    # barcode only (bestpay): a paid one, which no notification may undo
        r = await stack.pay(amount=amount(yuan=37), method="barcode", auth_code=auth_code(channel))
        assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
    pid = r.body["id"]
    order = sim_order(stack, channel, pid)
    paid = doctored(order, state=OrderState.SUCCESS, paid_at=order.created_at)
    # captured now, replayed after the payment changed
    old_success = state.notify_builder(paid, None)
    old_failure = state.notify_builder(doctored(order, state=OrderState.PAYERROR), None)

    attacks: list[tuple[str, set[str], Any]] = [
        ("bad signature", SIGNATURE_REASONS, lambda: post_notification(stack, channel, paid, tamper="body")),
        ("wrong amount", {"amount_mismatch"},
         lambda: post_notification(stack, channel, doctored(paid, amount=paid.amount + 100))),
        ("unknown order", {"unknown_order"}, lambda: post_notification(stack, channel, _unknown(paid))),
    ]

    async def wrong_merchant():
        with _provider_claims(state, mch_id="1999999999", app_id="wx0000000000000000"):
            url, headers, body = state.notify_builder(doctored(paid, mch_id="1999999999"), None)
        return await _post(url, headers, body)
    attacks.append(("wrong merchant", MERCHANT_REASONS | SIGNATURE_REASONS, wrong_merchant))

    if channel in TIMESTAMPED:
        async def stale():
            with mock.patch("time.time", return_value=time.time() - 900):
                url, headers, body = state.notify_builder(paid, None)
            return await _post(url, headers, body)
        attacks.append(("stale timestamp", {"stale"}, stale))

    if channel in AES_GCM:
        sim = state.notify_builder.__self__

        def resealed(change):
            async def send():
                url, _, body = state.notify_builder(paid, None)
                doc = orjson.loads(body)
                change(doc["resource"])
                new = orjson.dumps(doc)   # validly signed again: only the resource is wrong
                return await _post(url, {**sim.signed_headers(new), "Content-Type": "application/json"}, new)
            return send
        attacks += [
            ("truncated resource", {"undecryptable", "malformed"},
             resealed(lambda res: res.update(ciphertext=res["ciphertext"][:-12]))),
            ("resource under another key", {"undecryptable"},
             resealed(lambda res: res.update(ciphertext=base64.b64encode(secrets.token_bytes(64)).decode()))),
            ("resource without ciphertext", {"undecryptable", "malformed"},
             resealed(lambda res: res.pop("ciphertext"))),
        ]

    before = await _snapshot(stack, pid)
    acks: dict[str, tuple[int, bytes]] = {}
    for name, reasons, attack in attacks:
        counted = _rejected(await _metrics(stack), channel)
        acks[name] = await attack()
        after = _rejected(await _metrics(stack), channel)
        grew = {k for k in after if after[k] > counted.get(k, 0.0)}
        assert grew & reasons, f"{channel} {name}: counted as {grew or 'nothing'}, expected one of {reasons}"
        assert await _snapshot(stack, pid) == before, f"{channel} {name} changed the payment"
    assert await stack.pool.fetchval("select count(*) from payments where merchant_order_no = $1",
                                     r.body["merchant_order_no"]) == 1

    # the payment changes for real, then old valid notifications come again
    if method is not None:
        await stack.customer_pays(channel, out_trade_no=order.out_trade_no)
        assert (await stack.wait_final(pid))["status"] == "SUCCEEDED"
    settled = await _snapshot(stack, pid)
    await _post(*old_success)
    assert await _snapshot(stack, pid) == settled, f"{channel}: a replayed success changed the payment"
    await _post(*old_failure)
    assert await _snapshot(stack, pid) == settled, f"{channel}: a replayed failure changed a paid payment"
    # whatever the provider's format, a refusal never looks like its acknowledgement of a good one
    adapter = ADAPTERS[channel].__new__(ADAPTERS[channel])   # ack() needs no settings
    good = adapter.ack(True)
    for name, ack in acks.items():
        assert ack != (good.status, good.body), (channel, name, ack)
        # a refusal is the sender's fault: the provider's failure answer with a 4xx, never a 5xx (which pages)
        assert 400 <= ack[0] < 500, (channel, name, ack)
