"""Fair share under a flood: one merchant firing far more slow payments than
its share of in-flight channel calls gets 429 RATE_LIMITED for the surplus,
while another merchant's payments go through as before."""
from __future__ import annotations

import asyncio
import statistics
import time

from channels.secrets import Secret
from paycore.merchants import store as merchants
from paycore.merchants.auth import SecretBox
from tests.support.chaoskit import metric, metrics_text, record
from tests.support.helpers import amount, auth_code

FLOOD = 150   # the stack's limit is the default 64 in flight per merchant and worker


async def _honest_payments(stack, who: str, secret: str, n: int) -> list[tuple[int, float]]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await stack.api("POST", "/v1/payments", {
                "merchant_order_no": "fair-" + str(time.time_ns()), "amount": amount(yuan=12), "currency": "CNY",
                "method": "barcode", "auth_code": auth_code("alipay")}, merchant=who, secret=secret)
        out.append((r.status, time.perf_counter() - t0))
        assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
    return out


async def test_one_merchants_flood_does_not_starve_another(stack):
    async with stack.pool.acquire() as conn:
        secret = await merchants.add(conn, SecretBox(Secret(stack.master_key)), "m_fair_b", "Second merchant",
                                     upsert=True)
    baseline = [s for _, s in await _honest_payments(stack, "m_fair_b", secret, 10)]
    before = metric(await metrics_text(stack), "paycore_merchant_concurrency_refused_total", merchant=stack.merchant_id)
    # merchant A: FLOOD payments at once, each slower than the channel timeout (scenario 15)
    flood = [asyncio.create_task(stack.pay(amount=amount(15, yuan=3), method="barcode", auth_code=auth_code("wechatpay")))
             for _ in range(FLOOD)]
    await asyncio.sleep(0.3)
    during = [s for _, s in await _honest_payments(stack, "m_fair_b", secret, 10)]
    answers = await asyncio.gather(*flood)
    statuses = [r.status for r in answers]
    refused = [r for r in answers if r.status == 429]
    assert refused and all(r.error == "RATE_LIMITED" and r.headers.get("Retry-After") for r in refused), statuses
    assert set(statuses) <= {201, 429}, statuses
    assert len(refused) >= FLOOD - 64
    after = metric(await metrics_text(stack), "paycore_merchant_concurrency_refused_total", merchant=stack.merchant_id)
    assert after - before == len(refused)
    # nothing refused was recorded: only the admitted payments exist
    admitted = sum(1 for s in statuses if s == 201)
    record("fair_share", flood=FLOOD, admitted=admitted, refused=len(refused),
           other_merchant_p50_ms_before=round(statistics.median(baseline) * 1e3, 1),
           other_merchant_p50_ms_during=round(statistics.median(during) * 1e3, 1),
           other_merchant_max_ms_during=round(max(during) * 1e3, 1))
