"""Helpers for the operations tests: the ``paycore`` CLI as an operator runs it
(a subprocess against the test stack's config), a merchant's webhook receiver,
and polling."""
from __future__ import annotations

import asyncio
import inspect
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from devstack.stack import free_port


@dataclass
class CliResult:
    rc: int
    out: str
    err: str


async def paycore_cli(stack: Any, *args: str, timeout: float = 60.0, env_extra: dict[str, str] | None = None
                      ) -> CliResult:
    """``python -m paycore.cli --config <stack config> ARGS`` without blocking the event loop
    (the webhook receiver and the simulators live in this process)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(stack.env, **(env_extra or {})))
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return CliResult(proc.returncode or 0, out.decode(), err.decode())


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
                     what: str = "condition") -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {got!r})")
        await asyncio.sleep(interval)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int           # what the receiver answered
    at: float


@dataclass
class Receiver:
    """A merchant's webhook endpoint. ``/hook/<name>`` answers ``behaviour[name]``:
    an int status, or a list of statuses used one per delivery (the last repeats)."""

    behaviour: dict[str, Any] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"

    def received(self, name: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == f"/hook/{name}"]

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        plan = self.behaviour.get(name, 200)
        if isinstance(plan, list):
            n = len(self.received(name))
            status = plan[min(n, len(plan) - 1)]
        else:
            status = plan
        self.deliveries.append(Delivery(request.path, dict(request.headers), body, status, time.time()))
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook/{name}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()
