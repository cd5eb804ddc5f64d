"""Relay leadership with a bounded takeover, and supervised serve workers.

* The relay leader is frozen (SIGSTOP: a paused VM, a stalled host). Postgres
  ends its lock session after ``relay_lease`` seconds without a heartbeat, a
  second paycore process takes over and publishes what is committed meanwhile;
  when the old leader thaws it steps down and publishes nothing out of order.
* ``serve --workers 2``: a SIGKILLed worker is restarted (counted in
  ``paycore_worker_restarts_total``) and the API keeps answering; workers that
  keep dying make ``/readyz`` fail.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import aiohttp
import pytest

from devstack.stack import free_port, toml_dump
from paycore.outbox.relay import RELAY_LOCK
from tests.support.chaoskit import metric, record, run_audit
from tests.support.helpers import auth_code

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]
LEASE = 2.0


def _config(stack, path: Path, port: int, **server) -> Path:
    cfg = tomllib.loads(stack.config_path.read_text())
    cfg["server"].update(port=port, public_base_url=f"http://127.0.0.1:{port}", **server)
    cfg["journal"]["relay_lease"] = LEASE
    path.write_text(toml_dump(cfg))
    return path


def _serve(stack, config: Path, workers: int = 1) -> subprocess.Popen:
    with open(stack.var / f"{config.stem}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "paycore.cli", "--config", str(config), "serve", "--workers",
                                 str(workers)], stdout=log, stderr=subprocess.STDOUT, env=stack.env,
                                start_new_session=True)


async def _ready(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(base + "/readyz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(base)


async def _leader_pid(stack) -> int | None:
    name = await stack.pool.fetchval(
        "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
        "where l.locktype = 'advisory' and l.objid = $1 and l.granted "
        # advisory locks are per database: another stack of the same session (its own database) has its own leader
        "and l.database = (select oid from pg_database where datname = current_database())", RELAY_LOCK)
    return int(name.rsplit("-", 1)[1]) if name and name.startswith("paycore-relay-") else None


async def _other_leader(stack, old: int) -> int | None:
    pid = await _leader_pid(stack)

    return pid if pid not in (None, old) else None


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)


async def test_a_frozen_relay_leader_is_replaced_within_the_lease_and_steps_down_on_thaw(chaos):
    stack = chaos.stack
    # the stack's own paycore (leader, restarted with the short lease), then a second process on another port
    await asyncio.to_thread(stack.stop_paycore)
    a_cfg = _config(stack, stack.var / "leader-a.toml", stack.port)
    orig, orig_port, stack.config_path = stack.config_path, stack.port, a_cfg
    b_port = free_port()
    b = _serve(stack, _config(stack, stack.var / "leader-b.toml", b_port))
    try:
        await asyncio.to_thread(stack.start_paycore)
        await _ready(f"http://127.0.0.1:{b_port}")
        leader = await _until(lambda: _leader_pid(stack), 15, "a relay leader")
        assert leader in (stack.proc.pid, b.pid)
        ports = {stack.proc.pid: stack.port, b.pid: b_port}
        frozen_port, live_port = ports[leader], ports[b.pid if leader == stack.proc.pid else stack.proc.pid]
        os.kill(leader, signal.SIGSTOP)
        frozen_at = time.monotonic()
        stack.port = live_port   # payments through the live process while the old leader is frozen
        ids = []
        for _ in range(5):
            r = await stack.pay(amount=1000, method="barcode", auth_code=auth_code("wechatpay"))
            assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
            ids.append(r.body["id"])
        new_leader = await _until(lambda: _other_leader(stack, leader), 5 * LEASE + 10, "a new relay leader")
        took_over = time.monotonic() - frozen_at
        await _until(lambda: _outbox_empty(stack, ids), 2 * LEASE + 15, "the events published by the new leader")
        published = time.monotonic() - frozen_at
        # thaw: the old leader finds its session gone and steps down; nothing it held is published out of order
        os.kill(leader, signal.SIGCONT)
        for _ in range(3):
            r = await stack.pay(amount=1000, method="barcode", auth_code=auth_code("wechatpay"))
            assert r.status == 201, r.body
        async with aiohttp.ClientSession() as s:
            async def stepped_down():
                async with s.get(f"http://127.0.0.1:{frozen_port}/metrics") as r:
                    return metric(await r.text(), "paycore_relay_stepdowns_total") >= 1
            await _until(stepped_down, 20, "the thawed leader counted its step-down")
        assert await _leader_pid(stack) == new_leader
        report = await run_audit(stack)
        assert report["missing"] == 0 and report["out_of_order"] == 0, report
        record("relay_leader_frozen", lease_s=LEASE, takeover_s=round(took_over, 2),
               first_publish_after_freeze_s=round(published, 2))
    finally:
        stack.config_path, stack.port = orig, orig_port
        await _kill(b)
        await asyncio.to_thread(stack.stop_paycore)


async def _outbox_empty(stack, ids):
    n = await stack.pool.fetchval("select count(*) from outbox where payment_id = any($1::text[])", ids)
    return n == 0


async def _worker_pids(pid: int) -> list[int]:
    """The serve workers under ``pid`` (not multiprocessing's resource tracker)."""
    out = []
    try:
        children = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    for c in children:
        try:
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            pass
    return out


async def test_a_dead_worker_is_restarted_and_a_crash_loop_fails_readyz(chaos):
    stack = chaos.stack
    await asyncio.to_thread(stack.stop_paycore)
    cfg = _config(stack, stack.var / "workers.toml", stack.port, restart_backoff_max=0.5, crash_loop_restarts=3,
                  crash_loop_window=30.0)
    orig, stack.config_path = stack.config_path, cfg
    try:
        await asyncio.to_thread(stack.start_paycore, 2)
        pids = await _until(lambda: _worker_pids_n(stack.proc.pid, 2), 20, "two workers")
        os.kill(pids[0], signal.SIGKILL)
        killed_at = time.monotonic()
        await _until(lambda: _replaced(stack.proc.pid, pids[0]), 20, "the dead worker replaced")
        restarted = time.monotonic() - killed_at
        await _ready(stack.base)
        for _ in range(6):   # whichever worker answers, payments go through
            r = await stack.pay(amount=1000, method="barcode", auth_code=auth_code("alipay"))
            assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
        async with stack.session.get(stack.base + "/metrics") as r:
            assert metric(await r.text(), "paycore_worker_restarts_total") >= 1
        # two more deaths inside the window: a crash loop, and /readyz says so
        for _ in range(2):
            victim = (await _until(lambda: _worker_pids_n(stack.proc.pid, 2), 20, "two workers"))[0]
            os.kill(victim, signal.SIGKILL)
            await _until(lambda: _replaced(stack.proc.pid, victim), 20, "the dead worker replaced")

        async def not_ready():
            try:
                async with stack.session.get(stack.base + "/readyz") as r:
                    body = await r.json()
                    return r.status == 503 and "workers:crash_loop" in body["degraded"]
            except aiohttp.ClientError:
                return False
        await _until(not_ready, 20, "/readyz failing during the crash loop")
        async with stack.session.get(stack.base + "/healthz") as r:
            assert r.status == 200   # the process is up; it is not fit for traffic
        record("worker_restart", restart_s=round(restarted, 2), crash_loop_restarts=3)
    finally:
        await asyncio.to_thread(stack.stop_paycore)
        stack.config_path = orig


async def _worker_pids_n(pid: int, n: int) -> list[int] | None:
    pids = await _worker_pids(pid)
    return pids if len(pids) >= n else None


async def _replaced(pid: int, dead: int) -> bool:
    pids = await _worker_pids(pid)
    return dead not in pids and len(pids) >= 2
