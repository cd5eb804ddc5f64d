"""``kafka.relay = "separate"``: the serve workers never publish; ``paycore relay``, a process of
its own, does — what an operator checks: events wait in the outbox while no relay runs, the relay
process drains them to the topic (``paycore audit`` clean), its /metrics says it leads and what it
published, SIGTERM ends it cleanly, and what arrives meanwhile waits for the next relay, not lost."""
from __future__ import annotations

import asyncio
import signal
import sys
import urllib.request

import pytest

from devstack import stack as devstack
from tests.support.chaoskit import run_audit
from tests.support.helpers import amount, auth_code
from tests.support.ops import eventually
from tests.support.stack import build_stack, teardown_stack


@pytest.fixture(scope="module")
async def separate(tmp_path_factory):
    s = await build_stack(tmp_path_factory.mktemp("relay-separate"),
                          tweak=lambda o: o["kafka"].update(relay="separate"))
    try:
        yield s
    finally:
        await teardown_stack(s)


async def outbox(stack) -> int:
    return await stack.pool.fetchval("select count(*) from outbox")


async def start_relay(stack, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "relay", "--metrics-port", str(port),
        "--metrics-host", "127.0.0.1", env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    return {name: float(value) for name, _, value in (line.rpartition(" ") for line in text.splitlines())
            if name and not name.startswith("#")}


async def pay_some(stack, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("alipay"))
        assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
        ids.append(r.body["id"])
    return ids


async def test_the_workers_leave_the_outbox_to_the_relay_process(separate):
    stack = separate
    await pay_some(stack, 3)
    ready = await stack.api("GET", "/readyz")
    assert ready.status == 200 and ready.body["relay_leader"] is False
    await asyncio.sleep(1.5)   # the test stack's relay polls every 10 ms: a worker's relay would have drained it
    assert await outbox(stack) == 6   # created + succeeded, each

    port = devstack.free_port()
    relay = await start_relay(stack, port)
    try:
        async def drained():
            return await outbox(stack) == 0
        await eventually(drained, timeout=30, what="the relay process drained the outbox")
        m = await eventually(lambda: (lambda d: d if d.get("paycore_events_published_total", 0) >= 6 else None)(
            scrape(port)), timeout=10, what="the relay's metrics")
        assert m["paycore_relay_leader"] == 1.0 and m["paycore_events_published_total"] == 6.0
        report = await run_audit(stack)
        assert report["ok"] and report["missing"] == 0 and report["duplicated"] == 0, report
    finally:
        relay.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(relay.communicate(), 20)
    assert relay.returncode == 0, err.decode()[-2000:]
    assert "6 events published" in err.decode()

    # no relay now: what is paid meanwhile waits in the outbox, then the next relay publishes it
    await pay_some(stack, 1)
    await asyncio.sleep(1.0)
    assert await outbox(stack) == 2
    relay = await start_relay(stack, devstack.free_port())
    try:
        async def drained_again():
            return await outbox(stack) == 0
        await eventually(drained_again, timeout=30, what="the second relay drained the outbox")
        report = await run_audit(stack)
        assert report["ok"] and report["missing"] == 0, report
    finally:
        relay.send_signal(signal.SIGTERM)
        await asyncio.wait_for(relay.communicate(), 20)
    assert relay.returncode == 0


async def test_the_relay_command_refuses_without_kafka(separate, tmp_path):
    config = tmp_path / "nokafka.toml"
    config.write_text(separate.config_path.read_text().replace(f'bootstrap = "{separate.broker.bootstrap}"',
                                                               'bootstrap = ""'))
    assert 'bootstrap = ""' in config.read_text()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(config), "relay", env=separate.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and "no Kafka configured" in err.decode()


async def test_the_relay_command_says_so_when_the_database_is_unreachable(separate, tmp_path):
    config = tmp_path / "nodb.toml"
    db_url = separate.db_url
    dead = devstack.free_port()   # nothing listens there
    text = separate.config_path.read_text()
    assert db_url in text
    config.write_text(text.replace(db_url, f"postgresql://postgres@127.0.0.1:{dead}/paycore"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(config), "relay", env=separate.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3 and "the database is unreachable" in err.decode()
    assert "Traceback" not in err.decode()
