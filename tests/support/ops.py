"""Helpers for the operations tests: the ``paycore`` CLI as an operator runs it
(a subprocess against the test stack's config), a merchant's webhook receiver,
and polling."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
from aiohttp import web

from paycore.runtime import LISTEN_BACKLOG

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
    an int status, or a list of statuses used one per delivery (the last repeats);
    a string is a URL to redirect to (302 with that ``Location``)."""

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
        if isinstance(status, str):
            self.deliveries.append(Delivery(request.path, dict(request.headers), body, 302, time.time()))
            return web.Response(status=302, headers={"Location": status})
        self.deliveries.append(Delivery(request.path, dict(request.headers), body, status, time.time()))
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook/{name}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=LISTEN_BACKLOG).start()
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


@contextlib.asynccontextmanager
async def second_paycore(stack: Any, var: Path, workers: int = 2) -> AsyncIterator[str]:
    """Another ``paycore serve --workers N`` (SO_REUSEPORT) on its own port with the stack's config and
    database; yields its base URL. Requests on fresh connections reach its workers at random."""
    port = free_port()
    cfg = var / "second.toml"
    cfg.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", stack.config_path.read_text(), count=1))
    log = open(var / "second.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "paycore.cli", "--config", str(cfg), "serve", "--workers",
                             str(workers)], stdout=log, stderr=subprocess.STDOUT, env=stack.env, start_new_session=True)
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as s:
            while True:
                assert proc.poll() is None, "the second paycore exited"
                assert time.monotonic() < deadline, "second paycore not ready"
                try:
                    async with s.get(base + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)
