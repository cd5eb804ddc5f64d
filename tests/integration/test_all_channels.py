"""Every channel through the public API against its simulator over HTTP:
every supported method, the simulator's scenarios, notifications (duplicate
and forged) and refunds. Parametrised from the adapters' own declarations."""
from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import pytest

from channels.base import Method
from channels.registry import ADAPTERS
from simulators.kit import OrderState
from tests.support.helpers import CODE_PREFIX, amount, auth_code, doctored, post_notification, sim_order

CHANNELS = sorted(ADAPTERS)
NFC_TOKEN = "6234567890123451"
WALLETS = ("applepay", "huaweipay", "samsungpay")


def method_cases() -> list[tuple[str, str]]:
    return [(c, m.value) for c in CHANNELS for m in Method if m in ADAPTERS[c].methods]


def immediate_method(channel: str) -> str | None:
    """The method where the customer is present (a code or a tap), if any."""
    m = ADAPTERS[channel].methods
    for cand in (Method.BARCODE, Method.NFC):
        if cand in m:
            return cand.value
    return None


def order_method(channel: str) -> str | None:
    m = ADAPTERS[channel].methods
    for cand in (Method.QR, Method.JSAPI, Method.H5, Method.APP):
        if cand in m:
            return cand.value
    return None


def body_for(channel: str, method: str, amt: int) -> dict[str, Any]:
    b: dict[str, Any] = {"amount": amt, "method": method}
    if method in ("barcode", "sonic"):
        b["auth_code"] = auth_code(channel)
    elif method == "nfc":
        b["nfc"] = {"token": NFC_TOKEN, "expiry": "2912", "cryptogram": "AgAAAAAAAIhtq2rXYk3E0QABAAA=",
                    "emv_data": "9F2608A1B2C3D4E5F60718"}
        if channel in WALLETS:
            b["nfc"]["wallet"] = channel
        else:
            b["channel"] = channel
    else:
        b["channel"] = channel
        if method in ("jsapi", "wallet"):
            b["payer"] = {"user_id": "2088000000000001"} if channel in ("alipay", "bankwallet") \
                else {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
    return b


async def play_client(stack, channel: str, p: dict[str, Any]) -> None:
    """What the customer's app does before paying an in-app order (Alipay wap/app
    orders exist only once the client opens them)."""
    params = p.get("pay_params") or {}
    if channel != "alipay" or p["method"] not in ("h5", "app"):
        return
    async with aiohttp.ClientSession() as s:
        if "pay_url" in params:
            async with s.get(params["pay_url"]) as r:
                assert r.status == 200
        else:
            async with s.post(stack.sim_url("alipay") + "/gateway.do", data=params["order_string"],
                              headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}) as r:
                assert r.status == 200


async def customer_completes(stack, channel: str, p: dict[str, Any]) -> None:
    await play_client(stack, channel, p)
    if p["qr_code"]:
        await stack.customer_pays(channel, qr_code=p["qr_code"])
    else:
        order = sim_order(stack, channel, p["id"])
        await stack.customer_pays(channel, out_trade_no=order.out_trade_no)


async def create(stack, channel: str, method: str, scenario: int = 0, **extra: Any):
    return await stack.pay(**body_for(channel, method, amount(scenario)), **extra)


@pytest.mark.parametrize("channel,method", method_cases())
async def test_every_supported_method_succeeds(stack, channel, method):
    r = await create(stack, channel, method)
    assert r.status == 201, r.body
    p = r.body
    assert p["channel"] == channel
    if method in ("barcode", "sonic", "nfc", "wallet"):
        assert p["status"] == "SUCCEEDED", p
    else:
        assert p["status"] == "PENDING", p
        assert p["qr_code"] if method == "qr" else p["pay_params"]
        await customer_completes(stack, channel, p)
        p = await stack.wait_final(p["id"])
        assert p["status"] == "SUCCEEDED", p
    if method == "nfc":
        assert p["wallet"] == (channel if channel in WALLETS else None) or channel == "unionpay"
        assert p["nfc"]["token"] == NFC_TOKEN[:6] + "******" + NFC_TOKEN[-4:]
        raw = await stack.pool.fetchval("select nfc::text from payments where id = $1", p["id"])
        assert NFC_TOKEN not in raw


@pytest.mark.parametrize("channel", [c for c in CHANNELS if immediate_method(c)])
async def test_userpaying_then_success(stack, channel):
    r = await create(stack, channel, immediate_method(channel), 11)
    assert r.body["status"] in ("PROCESSING", "SUCCEEDED"), r.body
    assert (await stack.wait_final(r.body["id"]))["status"] == "SUCCEEDED"


@pytest.mark.parametrize("channel", [c for c in CHANNELS if immediate_method(c)])
async def test_userpaying_forever_ends_by_channel_rule(stack, channel):
    r = await create(stack, channel, immediate_method(channel), 12)
    assert r.body["status"] == "PROCESSING", r.body
    final = await stack.wait_final(r.body["id"], timeout=20)
    rule = ADAPTERS[channel].default_recovery.final_action
    assert final["status"] == ("REVERSED" if rule == "reverse" else "CLOSED"), final


@pytest.mark.parametrize("channel", [c for c in CHANNELS if immediate_method(c)])
async def test_declined_ends_failed(stack, channel):
    r = await create(stack, channel, immediate_method(channel), 13)
    assert r.status == 201
    final = r.body if r.body["status"] != "PROCESSING" else await stack.wait_final(r.body["id"])
    assert final["status"] == "FAILED" and final["failure"]["channel_code"], final


@pytest.mark.parametrize("channel", [c for c in CHANNELS if immediate_method(c)])
@pytest.mark.parametrize("scenario", [14, 15], ids=["system_error", "slow"])
async def test_unknown_outcome_then_query_finds_success(stack, channel, scenario):
    r = await create(stack, channel, immediate_method(channel), scenario)
    assert r.status == 201
    assert r.body["status"] == "PROCESSING", r.body
    assert (await stack.wait_final(r.body["id"], timeout=20))["status"] == "SUCCEEDED"
    assert sim_order(stack, channel, r.body["id"]).pay_calls == 1


@pytest.mark.parametrize("channel", [c for c in CHANNELS if order_method(c)])
async def test_order_never_paid_is_closed_on_cancel(stack, channel):
    r = await create(stack, channel, order_method(channel), 12)
    assert r.body["status"] == "PENDING"
    c = await stack.api("POST", f"/v1/payments/{r.body['id']}/cancel", {})
    assert c.status == 200 and c.body["status"] == "CLOSED", c.body


@pytest.mark.parametrize("channel", [c for c in CHANNELS if order_method(c)])
async def test_notification_applied_once_however_often(stack, channel):
    r = await create(stack, channel, order_method(channel), 16)
    await customer_completes(stack, channel, r.body)
    assert (await stack.wait_final(r.body["id"]))["status"] == "SUCCEEDED"
    await asyncio.sleep(0.5)
    order = sim_order(stack, channel, r.body["id"])
    await post_notification(stack, channel, order)
    types = [e["type"] for e in await stack.events(r.body["id"])]
    assert types == ["payment.created", "payment.succeeded"]


@pytest.mark.parametrize("channel", [c for c in CHANNELS if order_method(c)])
async def test_forged_notification_refused(stack, channel):
    r = await create(stack, channel, order_method(channel))
    await play_client(stack, channel, r.body)
    order = sim_order(stack, channel, r.body["id"])
    paid = doctored(order, state=OrderState.SUCCESS)
    paid.paid_at = order.created_at
    await post_notification(stack, channel, paid, tamper="body")
    await post_notification(stack, channel, doctored(paid, amount=order.amount + 1))
    await post_notification(stack, channel, doctored(paid, out_trade_no="pay_" + secrets.token_hex(12)))
    got = await stack.api("GET", f"/v1/payments/{r.body['id']}")
    assert got.body["status"] == "PENDING"
    assert [e["type"] for e in await stack.events(r.body["id"])] == ["payment.created"]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_partial_then_full_refund(stack, channel):
    method = immediate_method(channel) or order_method(channel)
    r = await stack.pay(**body_for(channel, method, 20000))
    p = r.body
    if p["status"] == "PENDING":
        await customer_completes(stack, channel, p)
        p = await stack.wait_final(p["id"])
    assert p["status"] == "SUCCEEDED", p
    for no, part in (("part", 5000), ("rest", 15000)):
        rr = await stack.api("POST", f"/v1/payments/{p['id']}/refunds", {"refund_no": no, "amount": part})
        assert rr.status == 201, rr.body
        final = rr.body
        for _ in range(100):
            if final["status"] != "PROCESSING":
                break
            await asyncio.sleep(0.1)
            final = (await stack.api("GET", f"/v1/refunds/{rr.body['id']}")).body
        assert final["status"] == "SUCCEEDED", final
    got = (await stack.api("GET", f"/v1/payments/{p['id']}")).body
    assert got["refunded_amount"] == 20000
    over = await stack.api("POST", f"/v1/payments/{p['id']}/refunds", {"refund_no": "more", "amount": 1})
    assert over.status == 422


@pytest.mark.parametrize("channel", sorted(CODE_PREFIX))
async def test_code_of_every_prefix_routes_to_its_channel(stack, channel):
    r = await stack.pay(amount=amount(), method="sonic", auth_code=auth_code(channel))
    assert r.status == 201 and r.body["channel"] == channel


async def test_unknown_code_and_unsupported_method(stack):
    r = await stack.pay(amount=100, method="barcode", auth_code="999999999999999999")
    assert r.status == 422 and r.error == "UNKNOWN_AUTH_CODE"
    r = await stack.pay(amount=100, method="barcode", auth_code=auth_code("alipay"), channel="wechatpay")
    assert r.status == 400 and r.body["error"]["field"] == "channel"
    r = await stack.pay(amount=100, method="qr", channel="bestpay")
    assert r.status == 422 and r.error == "UNSUPPORTED_METHOD"
    assert await stack.pool.fetchval("select count(*) from payments where channel = 'bestpay' and method = 'qr'") == 0


async def test_breaker_opens_under_a_failing_simulator_and_closes_after(stack):
    channel = "bestpay"
    await stack.sim(channel, "POST", "/_sim/fault", {"mode": "http500"})
    try:
        codes = []
        for _ in range(12):
            r = await create(stack, channel, "barcode")
            codes.append(r.status if r.status != 201 else r.body["status"])
        assert 503 in codes, codes
        fast = await create(stack, channel, "barcode")
        assert fast.status == 503 and fast.error == "CHANNEL_UNAVAILABLE"
        async with stack.session.get(stack.base + "/metrics") as m:
            assert f'paycore_channel_breaker_state{{channel="{channel}"}} 2.0' in await m.text()
    finally:
        await stack.sim(channel, "POST", "/_sim/fault", {"mode": None})
    await asyncio.sleep(1.2)   # open_seconds in the test config
    ok = await create(stack, channel, "barcode")
    assert ok.status == 201 and ok.body["status"] == "SUCCEEDED", ok.body
    async with stack.session.get(stack.base + "/readyz") as r:
        assert (await r.json())["channels"][channel] == "closed"
    # every PROCESSING payment the failing channel left ends final
    rows = await stack.pool.fetch("select id from payments where channel = $1 and status = 'PROCESSING'", channel)
    for row in rows:
        assert (await stack.wait_final(row["id"], timeout=30))["status"] != "PROCESSING"
