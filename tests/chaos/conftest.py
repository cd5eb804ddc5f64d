"""The chaos stack: the real stack with a fault-injecting proxy in front of
everything paycore talks to (Postgres, the broker, every simulator).

The test's own Postgres pool bypasses the proxy, so a test can look at the
database while paycore cannot reach it. Each test starts with every proxy
passing, no simulator fault and paycore running, whatever the last one left.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.stack import Stack, build_stack, teardown_stack


@dataclass
class Chaos:
    stack: Stack
    proxies: dict[str, FaultProxy] = field(default_factory=dict)

    def proxy(self, name: str) -> FaultProxy:
        return self.proxies[name]

    async def sim_fault(self, channel: str, mode: str | None) -> None:
        await self.stack.sim(channel, "POST", "/_sim/fault", {"mode": mode})

    async def reset(self) -> None:
        for p in self.proxies.values():
            p.set("pass")
        for ch in self.stack.sim_settings:
            await self.sim_fault(ch, None)
        if self.stack.broker.proc and self.stack.broker.proc.poll() is None:
            self.stack.broker.thaw()
        if self.stack.proc is None or self.stack.proc.poll() is not None:
            await asyncio.to_thread(self.stack.start_paycore)


def _tweak(overrides: dict[str, Any]) -> None:
    # a database that stops answering must turn into 503s within seconds, not the default's
    overrides["database"].update({"command_timeout": 2.0, "connect_timeout": 1.0})


@pytest.fixture(scope="session")
async def chaos_stack(tmp_path_factory):
    proxies: dict[str, FaultProxy] = {}

    async def proxy(name: str, port: int) -> int:
        p = await FaultProxy("127.0.0.1", port, name=name).start()
        proxies[name] = p
        return p.port

    s = await build_stack(tmp_path_factory.mktemp("chaos"), proxy=proxy, tweak=_tweak)
    c = Chaos(s, proxies)
    try:
        yield c
    finally:
        await c.reset()
        await teardown_stack(s)
        for p in proxies.values():
            await p.stop()


@pytest.fixture
async def chaos(chaos_stack: Chaos):
    await chaos_stack.reset()
    t0 = time.monotonic()
    yield chaos_stack
    await chaos_stack.reset()
    print(f"\n[chaos] test took {time.monotonic() - t0:.1f}s")
