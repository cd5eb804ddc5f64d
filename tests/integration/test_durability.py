"""Nothing accepted is lost: restarts mid-payment, and Kafka holds every event
Postgres holds, in seq order per payment."""
from __future__ import annotations

import asyncio
import os
import secrets
import signal

from tests.support.helpers import amount, auth_code, read_topic, sim_order


async def test_restart_in_the_middle_of_processing_still_ends_it(stack):
    # 14: the channel answered a system error although the payment went through; only a query tells
    paying = await stack.pay(amount=amount(14), method="barcode", auth_code=auth_code("wechatpay"))
    forever = await stack.pay(amount=amount(12), method="barcode", auth_code=auth_code("alipay"))
    assert paying.body["status"] == forever.body["status"] == "PROCESSING"
    stack.kill_paycore(signal.SIGKILL)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(stack.start_paycore)
    assert (await stack.wait_final(paying.body["id"], timeout=20))["status"] == "SUCCEEDED"
    assert (await stack.wait_final(forever.body["id"], timeout=20))["status"] == "REVERSED"
    assert sim_order(stack, "wechatpay", paying.body["id"]).pay_calls == 1
    assert sim_order(stack, "alipay", forever.body["id"]).pay_calls == 1


async def test_killed_during_the_channel_call_recovers(stack):
    """SIGKILL while the synchronous call is in flight (the SLOW scenario holds it): the payment,
    committed before the call, is ended by recovery after the restart, never charged twice."""
    order_no = "kill" + secrets.token_hex(8)
    task = asyncio.create_task(stack.pay(merchant_order_no=order_no, amount=amount(15), method="barcode",
                                         auth_code=auth_code("wechatpay")))
    await asyncio.sleep(0.4)
    stack.kill_paycore(signal.SIGKILL)
    try:
        await task
    except Exception:
        pass   # the connection died with the worker: the POS would retry or query
    await asyncio.to_thread(stack.start_paycore)
    # only this test's payment: the session's stack holds others that legitimately stay open longer
    pid = await stack.pool.fetchval("select id from payments where merchant_order_no = $1", order_no)
    assert pid is not None, "the payment was committed before its channel call"
    final = await stack.wait_final(pid, timeout=25)
    assert final["status"] in ("SUCCEEDED", "REVERSED", "FAILED", "CLOSED"), final
    assert sim_order(stack, "wechatpay", pid).pay_calls <= 1


async def test_kafka_consumer_sees_every_event_in_seq_order(stack):
    ids = []
    for ch in ("wechatpay", "alipay"):
        r = await stack.pay(amount=10000, method="barcode", auth_code=auth_code(ch))
        ids.append(r.body["id"])
        rr = await stack.api("POST", f"/v1/payments/{r.body['id']}/refunds", {"refund_no": "k1", "amount": 100})
        assert rr.status == 201
    qr = await stack.pay(amount=amount(), method="qr", channel="wechatpay")
    await stack.customer_pays("wechatpay", qr_code=qr.body["qr_code"])
    await stack.wait_final(qr.body["id"])
    ids.append(qr.body["id"])
    await asyncio.sleep(0.3)
    pg = await stack.pool.fetch("select event_id, payment_id, seq from events where payment_id = any($1::text[]) "
                                "order by payment_id, seq", ids)
    expected = {r["event_id"] for r in pg}
    got = await read_topic(stack.broker.bootstrap, "paycore.payments", expected)
    seen = {e["event_id"] for e in got}
    assert expected <= seen, f"missing from Kafka: {expected - seen}"
    for pid in ids:
        # the topic also carries payouts' events (keyed by the payout id, with "payout", no "payment")
        mine = [e for e in got if "payment" in e and e["payment"]["id"] == pid]
        assert all(e["_key"] == pid for e in mine)
        assert len({e["_partition"] for e in mine}) == 1
        seqs, dedup = [], set()
        for e in mine:
            if e["event_id"] not in dedup:
                dedup.add(e["event_id"])
                seqs.append(e["seq"])
        assert seqs == sorted(seqs) and seqs == list(range(1, len(seqs) + 1))
    assert await stack.pool.fetchval("select count(*) from outbox where payment_id = any($1::text[])", ids) == 0


async def test_two_workers_share_one_port_and_the_journal(stack):
    """`paycore serve --workers 2`: two processes on one port (SO_REUSEPORT), each
    with its own pools; metrics are aggregated across them."""
    import re
    import subprocess
    await asyncio.to_thread(stack.stop_paycore)
    await asyncio.to_thread(stack.start_paycore, 2)
    try:
        await asyncio.sleep(1.0)
        pgrep = subprocess.run(["pgrep", "-P", str(stack.proc.pid)], capture_output=True, text=True)
        children = [int(p) for p in pgrep.stdout.split()]
        listening = set(re.findall(r'worker (\d+) listening', stack.log_path.read_text()))
        assert len(children) >= 2 and len({c for c in children if str(c) in listening}) == 2
        replies = await asyncio.gather(*(stack.pay(amount=amount(), method="barcode",
                                                   auth_code=auth_code("wechatpay")) for _ in range(40)))
        assert all(r.status == 201 and r.body["status"] == "SUCCEEDED" for r in replies)
        # either worker answers /metrics for both; each applies its counts every second (metrics.Flusher)
        created = 0.0
        for _ in range(30):
            async with stack.session.get(stack.base + "/metrics") as r:
                text = await r.text()
            created = sum(float(v) for v in re.findall(
                r'paycore_payments_created_total\{channel="wechatpay",method="barcode"\} ([0-9.e+]+)', text))
            if created >= 40:
                break
            await asyncio.sleep(0.1)
        assert created >= 40
    finally:
        await asyncio.to_thread(stack.stop_paycore)
        await asyncio.to_thread(stack.start_paycore)


def _metrics_dirs(pid: int) -> set[str]:
    """The directories of the metric files a process has mapped (prometheus_client's multiprocess
    mode maps one file per kind and worker)."""
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1].rsplit("/", 1)[0] for line in f
                if "/paycore-metrics-" in line and line.rstrip().endswith(".db")}


async def test_a_stopped_server_leaves_no_metrics_directory_behind(stack):
    """``paycore serve`` without PROMETHEUS_MULTIPROC_DIR makes a directory for its workers' metric
    files; a clean stop (SIGTERM) removes it, so that restarts do not pile them up in /tmp."""
    await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("bankwallet"))
    dirs = _metrics_dirs(stack.proc.pid)
    assert len(dirs) == 1
    made = dirs.pop()
    assert os.path.isdir(made) and os.listdir(made)
    await asyncio.to_thread(stack.stop_paycore)
    assert not os.path.exists(made)
    await asyncio.to_thread(stack.start_paycore)
    # the next server has a directory of its own, and serves
    assert _metrics_dirs(stack.proc.pid) - {made}
    assert (await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("bankwallet"))).status == 201
