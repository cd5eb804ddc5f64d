"""Rotating a merchant's secret with overlap (`paycore merchant rotate-secret ID --grace 24h`): the new
secret works at once on every worker, the old one keeps working (requests and webhooks) until the grace
ends and then stops by itself; webhooks name the signing key (kid) and carry a v1 per valid secret."""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import datetime

import aiohttp

from paycore.merchants.auth import signed_headers
from paycore.ops.webhooks import verify_signature
from tests.support.helpers import amount, auth_code
from tests.support.ops import eventually, paycore_cli, second_paycore

GRACE = 6   # seconds: long enough to use the old secret, short enough to watch it expire


async def status_at(base: str, merchant: str, secret: str) -> int:
    """One signed GET on a fresh connection (so a multi-worker server hands it to any worker)."""
    path = "/v1/payments?merchant_order_no=no-such-order"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(base + path, headers=signed_headers(merchant, secret, "GET", path)) as r:
            return r.status   # 404: authenticated (no such order); 401: not


async def hook_header(stack, receiver, merchant: str, secret: str) -> tuple[str, bytes]:
    name = f"rot-{secrets.token_hex(4)}"
    r = await stack.api("POST", "/v1/payments", {"merchant_order_no": "o" + secrets.token_hex(8), "amount": amount(),
                                                 "currency": "CNY", "method": "barcode",
                                                 "auth_code": auth_code("wechatpay"), "notify_url": receiver.url(name)},
                        merchant=merchant, secret=secret)
    assert r.status == 201, r.body
    (d,) = await eventually(lambda: receiver.received(name), what="the webhook")
    return d.headers["X-Paycore-Signature"], d.body


def fields(header: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=", 1)) for p in header.split(",")]   # type: ignore[misc]


async def test_rotation_with_grace_across_workers_then_the_old_secret_stops(stack, receiver, tmp_path):
    mid = "m_rot_" + secrets.token_hex(3)
    added = await paycore_cli(stack, "merchant", "add", mid)
    assert added.rc == 0, added.err
    old = json.loads(added.out)["secret"]
    assert json.loads(added.out)["kid"] == "k1"
    header, body = await hook_header(stack, receiver, mid, old)
    assert [k for k, _ in fields(header)] == ["t", "kid", "v1"] and ("kid", "k1") in fields(header)

    async with second_paycore(stack, tmp_path, workers=2) as other:
        # every worker has the merchant cached with the old secret
        assert [await status_at(other, mid, old) for _ in range(8)] == [404] * 8
        rot = await paycore_cli(stack, "merchant", "rotate-secret", mid, "--grace", f"{GRACE}s")
        assert rot.rc == 0, rot.err
        rotated = json.loads(rot.out)
        new = rotated["secret"]
        until = datetime.fromisoformat(rotated["previous_expires_at"]).timestamp()
        assert rotated["kid"] == "k2" and rotated["previous_kid"] == "k1" and new != old
        # at once, on any worker, without waiting for the cache: the new secret, and the old one still
        rotated_at = time.time()
        assert [await status_at(other, mid, new) for _ in range(8)] == [404] * 8
        print(f"new secret accepted by 8 of 8 fresh connections to 2 workers within "
              f"{time.time() - rotated_at:.2f} s of the rotation's answer")
        assert [await status_at(other, mid, old) for _ in range(4)] == [404] * 4
        assert await status_at(stack.base, mid, new) == 404 and await status_at(stack.base, mid, old) == 404

        # webhooks in the overlap: kid of the new secret, a v1 made with each
        header, body = await hook_header(stack, receiver, mid, new)
        assert time.time() < until, "the grace period ran out before the overlap was seen; raise GRACE"
        f = fields(header)
        assert [k for k, _ in f] == ["t", "kid", "v1", "v1"] and ("kid", "k2") in f
        assert verify_signature(new.encode(), body, header) and verify_signature(old.encode(), body, header)

        # the grace ends by itself: nobody runs anything
        await asyncio.sleep(max(0.0, until - time.time()) + 0.2)
        assert [await status_at(other, mid, old) for _ in range(6)] == [401] * 6
        print(f"old secret refused by 6 of 6 fresh connections {time.time() - until:.2f} s after its grace ended")
        assert await status_at(stack.base, mid, old) == 401
        assert [await status_at(other, mid, new) for _ in range(4)] == [404] * 4
    header, body = await hook_header(stack, receiver, mid, new)
    assert [k for k, _ in fields(header)] == ["t", "kid", "v1"] and ("kid", "k2") in fields(header)
    assert verify_signature(new.encode(), body, header) and not verify_signature(old.encode(), body, header)

    async with stack.session.get(stack.base + "/metrics") as r:
        text = await r.text()
    used = [ln for ln in text.splitlines() if ln.startswith(f'paycore_auth_previous_secret_total{{merchant="{mid}"}}')]
    assert used and float(used[0].split()[-1]) >= 1, "requests signed with the old secret are counted"


async def test_grace_is_parsed_and_bounded(stack):
    mid = "m_rotb_" + secrets.token_hex(3)
    assert (await paycore_cli(stack, "merchant", "add", mid)).rc == 0
    for bad in ("24x", "-1h", "31d", "1.5h"):
        out = await paycore_cli(stack, "merchant", "rotate-secret", mid, f"--grace={bad}")
        assert out.rc == 1 and "--grace" in out.err, (bad, out)
    assert (await paycore_cli(stack, "merchant", "rotate-secret", "m_nobody", "--grace", "1h")).rc == 1
    day = json.loads((await paycore_cli(stack, "merchant", "rotate-secret", mid, "--grace", "24h")).out)
    left = datetime.fromisoformat(day["previous_expires_at"]).timestamp() - time.time()
    assert 23.9 * 3600 < left <= 24 * 3600 and day["kid"] == "k2"
    listed = [json.loads(line) for line in (await paycore_cli(stack, "merchant", "list")).out.splitlines()]
    mine = next(m for m in listed if m["id"] == mid)
    assert mine["kid"] == "k2" and mine["previous_expires_at"] == day["previous_expires_at"]
    assert "secret" not in json.dumps(mine)
    # a second rotation drops the oldest secret at once: at most two are ever valid
    again = json.loads((await paycore_cli(stack, "merchant", "rotate-secret", mid)).out)
    assert again["kid"] == "k3" and again["previous_expires_at"] is None
    assert await status_at(stack.base, mid, again["secret"]) == 404
    await asyncio.sleep(1.1)   # the worker's merchant cache (disabling and zero-grace reach it within 1 s)
    assert await status_at(stack.base, mid, day["secret"]) == 401
