"""`paycore merchant …` against the database, and what merchants see of it."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from tests.support.helpers import amount, auth_code


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), *args],
                          env=stack.env, capture_output=True, text=True, timeout=60)


async def test_merchant_add_list_rotate_disable(stack):
    out = cli(stack, "merchant", "add", "m_cli", "--name", "CLI shop", "--max-amount", "5000",
              "--sub", "wechatpay=1900000999")
    assert out.returncode == 0, out.stderr
    secret = json.loads(out.stdout)["secret"]
    assert len(secret) >= 32
    # stored encrypted, never in clear
    blob = await stack.pool.fetchval("select secret_enc from merchants where id = 'm_cli'")
    assert secret.encode() not in bytes(blob)

    listed = [json.loads(line) for line in cli(stack, "merchant", "list").stdout.splitlines()]
    mine = next(m for m in listed if m["id"] == "m_cli")
    assert mine["max_amount"] == 5000 and mine["status"] == "active"
    assert mine["sub_merchants"] == {"wechatpay": "1900000999"} and "secret" not in json.dumps(mine)

    ok = await stack.api("POST", "/v1/payments", {"merchant_order_no": "cli-1", "amount": 4000, "currency": "CNY",
                                                  "method": "barcode", "auth_code": auth_code("wechatpay")},
                         merchant="m_cli", secret=secret)
    assert ok.status == 201 and ok.body["status"] == "SUCCEEDED", ok.body
    too_much = await stack.api("POST", "/v1/payments", {"merchant_order_no": "cli-2", "amount": 5001,
                                                        "currency": "CNY", "method": "barcode",
                                                        "auth_code": auth_code("wechatpay")},
                               merchant="m_cli", secret=secret)
    assert too_much.status == 422 and too_much.error == "AMOUNT_LIMIT_EXCEEDED"
    # the sub-merchant id reached the channel (WeChat service-provider mode)
    from tests.support.helpers import sim_order
    order = sim_order(stack, "wechatpay", ok.body["id"])
    assert "1900000999" in json.dumps(order.extra) or order.mch_id == "1900000999"

    rotated = json.loads(cli(stack, "merchant", "rotate-secret", "m_cli").stdout)["secret"]
    assert rotated != secret
    await asyncio.sleep(1.1)   # merchant cache ttl
    old = await stack.api("GET", "/v1/payments?merchant_order_no=cli-1", merchant="m_cli", secret=secret)
    assert old.status == 401
    new = await stack.api("GET", "/v1/payments?merchant_order_no=cli-1", merchant="m_cli", secret=rotated)
    assert new.status == 200 and new.body["id"] == ok.body["id"]

    assert cli(stack, "merchant", "disable", "m_cli").returncode == 0
    await asyncio.sleep(1.1)
    disabled = await stack.api("GET", "/v1/payments?merchant_order_no=cli-1", merchant="m_cli", secret=rotated)
    assert disabled.status == 401 and disabled.error == "UNAUTHENTICATED"
    assert cli(stack, "merchant", "disable", "m_nobody").returncode == 1


async def test_merchants_cannot_see_each_others_payments(stack):
    other = "m_other_" + os.urandom(4).hex()    # the session's stack is shared: a merchant of our own
    out = json.loads(cli(stack, "merchant", "add", other).stdout)
    r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("alipay"))
    peek = await stack.api("GET", f"/v1/payments/{r.body['id']}", merchant=other, secret=out["secret"])
    assert peek.status == 404 and peek.error == "NOT_FOUND"
    refund = await stack.api("POST", f"/v1/payments/{r.body['id']}/refunds", {"refund_no": "x", "amount": 1},
                             merchant=other, secret=out["secret"])
    assert refund.status == 404


async def test_channels_command_prints_the_matrix(stack):
    out = cli(stack, "channels", "--json")
    rows = {r["channel"]: r for r in json.loads(out.stdout)}
    assert "barcode" in rows["wechatpay"]["methods"] and "reverse" in rows["wechatpay"]["flows"]
    assert "qr" in rows["alipay"]["methods"]
    table = cli(stack, "channels").stdout
    assert table.splitlines()[0].startswith("channel") and "wechatpay" in table


async def test_operational_endpoints(stack):
    async with stack.session.get(stack.base + "/healthz") as r:
        assert r.status == 200
    async with stack.session.get(stack.base + "/readyz") as r:
        body = await r.json()
        assert r.status == 200 and body["database"] is True
    async with stack.session.get(stack.base + "/openapi.json") as r:
        spec = await r.json()
        assert spec["openapi"].startswith("3.1")
    async with stack.session.get(stack.base + "/metrics") as r:
        text = await r.text()
        assert "paycore_journal_batch_size_bucket" in text
    async with stack.session.get(stack.base + "/v1/nothing") as r:
        body = await r.json()
        assert r.status == 404 and body["error"]["code"] == "NOT_FOUND"
