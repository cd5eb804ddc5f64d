"""What chaos tests share: a steady payment load that records every answer,
reading paycore's metrics, running ``paycore audit`` and recording figures
for docs/reliability.md."""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.helpers import auth_code

OUTPUT = Path(os.environ.get("PAYCORE_TEST_OUTPUT", Path(__file__).resolve().parent.parent.parent / "test-output"))


@dataclass
class Answer:
    order_no: str
    status: int                 # HTTP status, 0 when the connection failed
    code: str | None            # the error code, if any
    payment: dict[str, Any] | None
    seconds: float
    started: float              # time.monotonic() when sent


@dataclass
class Load:
    """``workers`` clients paying by barcode in a loop until ``stop()``; every answer kept."""

    stack: Any
    channels: tuple[str, ...] = ("wechatpay", "alipay", "bankwallet", "unionpay")
    workers: int = 6
    amount: int = 1200            # a plain success at every simulator
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def start(self) -> "Load":
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self.workers)]
        return self

    async def stop(self) -> list[Answer]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.answers

    async def _worker(self, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            ch = self.channels[(i + n) % len(self.channels)]
            n += 1
            await self.pay_once(ch)
            await asyncio.sleep(0.01)

    async def pay_once(self, channel: str, amount: int | None = None) -> Answer:
        order_no = "ld" + secrets.token_hex(10)
        body = {"merchant_order_no": order_no, "amount": amount or self.amount, "currency": "CNY",
                "method": "barcode", "auth_code": auth_code(channel), "subject": "load"}
        t0 = time.monotonic()
        try:
            r = await asyncio.wait_for(self.stack.api("POST", "/v1/payments", body), 20)
            a = Answer(order_no, r.status, r.error, r.body if r.status < 300 else None, time.monotonic() - t0, t0)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            a = Answer(order_no, 0, type(e).__name__, None, time.monotonic() - t0, t0)
        self.answers.append(a)
        return a


async def metrics_text(stack: Any) -> str:
    async with stack.session.get(stack.base + "/metrics") as r:
        return await r.text()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


async def outbox_depth(stack: Any) -> int:
    return await stack.pool.fetchval("select count(*) from outbox")


async def wait_outbox_empty(stack: Any, timeout: float = 60.0) -> float:
    """Seconds until the outbox drained; raises if it does not within ``timeout``."""
    t0 = time.monotonic()
    while await outbox_depth(stack):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"outbox still holds {await outbox_depth(stack)} events after {timeout}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def run_audit(stack: Any, wait: float = 60.0) -> dict[str, Any]:
    """``paycore audit --json`` against the stack, as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "audit", "--json",
        "--wait", str(wait), env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), wait + 90)
    assert proc.returncode in (0, 1), f"audit could not run ({proc.returncode}): {err.decode()[-2000:]}"
    report = json.loads(out)
    assert (proc.returncode == 0) == report["ok"]
    return report


async def wait_all_final(stack: Any, ids: list[str], timeout: float = 40.0) -> dict[str, str]:
    """Poll Postgres (not the API: it may be the thing under test) until every payment is final."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await stack.pool.fetch("select id, status from payments where id = any($1::text[])", ids)
        st = {r["id"]: r["status"] for r in rows}
        if all(s not in ("PENDING", "PROCESSING") for s in st.values()) or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.2)


def record(test: str, **figures: Any) -> None:
    """Append one line of figures to test-output/reliability.jsonl (docs/reliability.md quotes them)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT / "reliability.jsonl", "a") as f:
        f.write(json.dumps({"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures})
                + "\n")
    print(f"\n[figures] {test}: {json.dumps(figures)}")


def money_matches(status: str, order: Any) -> bool:
    """paycore's final status agrees with what the simulator did with the money."""
    paid = str(order.state) in ("SUCCESS", "REFUND")
    return paid if status == "SUCCEEDED" else not paid
