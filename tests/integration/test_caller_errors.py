"""The caller's errors are the caller's: nonsense from one integration is
refused as a 4xx, counted against that merchant, and never opens a channel's
breaker for everybody else."""
from __future__ import annotations

import re

from tests.support.helpers import nfc_token

HONEST = {"expiry": "3012", "cryptogram": "AgAAAAAAAIhtq2rXYk3E0QABAAA=", "wallet": "applepay",
          "emv_data": "9F2608A1B2C3D4E5F60718"}


def garbage_taps() -> list[dict]:
    """30 schema-valid taps no network would take: 20 this platform can tell, 10 only UnionPay can."""
    good = nfc_token("6250946")
    bad_check_digit = good[:-1] + str((int(good[-1]) + 1) % 10)
    kinds = [{"emv_data": "9F02060000000001009F1A020156"},   # chip data without the cryptogram (9F26)
             {"emv_data": "9F2608A1B2"}, {"emv_data": "DEADBEEF"}, {"emv_data": "9F2604A1B2C3D4"},
             {"expiry": "2101"}]
    refused_here = [dict(HONEST, token=good, **k) for k in kinds * 3] + [dict(HONEST, token=bad_check_digit)] * 5
    # a Visa-range token (check digit fine): UnionPay answers 10 报文格式错误[accNo]
    refused_there = [dict(HONEST, token=nfc_token("4111", 16)) for _ in range(10)]
    return refused_here + refused_there


def _counter(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        got = ",".join(sorted(m.group(1).split(",")))
        if all(part in got.split(",") for part in want.split(",")):
            total += float(m.group(2))
    return total


async def test_thirty_garbage_taps_are_4xx_and_honest_apple_pay_taps_still_succeed(stack):
    async with stack.session.get(stack.base + "/metrics") as r:
        before = await r.text()
    answers = [await stack.pay(amount=1200, method="nfc", nfc=nfc) for nfc in garbage_taps()]
    for r in answers:
        assert 400 <= r.status < 500, (r.status, r.body)
        assert r.error == "INVALID_REQUEST" and r.body["error"]["field"].startswith("nfc"), r.body
    provider_refused = [r for r in answers[20:]]
    assert all(r.body["error"]["field"] == "nfc.token" for r in provider_refused), [r.body for r in provider_refused]
    async with stack.session.get(stack.base + "/metrics") as r:
        after = await r.text()
    # counted against the merchant that sent them, never as a channel fault; the breaker stayed closed
    assert _counter(after, "paycore_caller_errors_total", merchant=stack.merchant_id, channel="applepay") - \
        _counter(before, "paycore_caller_errors_total", merchant=stack.merchant_id, channel="applepay") == 10
    assert _counter(after, "paycore_channel_errors_total", channel="applepay") == \
        _counter(before, "paycore_channel_errors_total", channel="applepay")
    assert _counter(after, "paycore_channel_breaker_state", channel="applepay") == 0
    # the refused payments are recorded as FAILED (nothing charged), not left to recovery
    rows = await stack.pool.fetch("select status, failure->>'code' as code from payments where channel = 'applepay' "
                                  "and failure->>'code' = 'INVALID_REQUEST'")
    assert len(rows) >= 10 and {r["status"] for r in rows} == {"FAILED"}
    for _ in range(5):
        r = await stack.pay(amount=1500, method="nfc", nfc=dict(HONEST, token=nfc_token("6250946")))
        assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
