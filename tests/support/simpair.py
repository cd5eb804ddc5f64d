"""A simulator and its adapter, wired over real HTTP on loopback, for channel tests.

    async with SimPair.start("wechatpay", tmp_path) as pair:
        res = await pair.adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code=...))
        note = await pair.next_notification()          # parsed by the adapter, acked as the provider wants

``pair.state`` is the simulator's order book; ``pair.notifications`` every
notification the receiver got (parsed, or the NotificationRejected raised).
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web

from paycore.runtime import LISTEN_BACKLOG

from simulators import devkeys
from channels.base import ChannelAdapter, Method, Notification, NotificationRejected, PayRequest
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from simulators.registry import SIMULATORS
from simulators.kit import STATE_KEY, SimState
from paycore.config import channel_settings
from devstack.stack import free_port


@dataclass
class SimPair:
    name: str
    adapter: ChannelAdapter
    state: SimState
    base_url: str
    notify_base: str
    notifications: list[Any] = field(default_factory=list)
    _queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def notify_url(self, kind: str = "payment") -> str:
        return f"{self.notify_base}/notify/{self.name}" + ("/refund" if kind == "refund" else "")

    def pay_request(self, *, amount: int, method: Method, out_trade_no: str | None = None, **kw: Any) -> PayRequest:
        import secrets
        return PayRequest(
            out_trade_no=out_trade_no or "pay_" + secrets.token_hex(12), amount=amount, method=method,
            subject=kw.pop("subject", "test order"), notify_url=kw.pop("notify_url", self.notify_url()),
            expire_at=kw.pop("expire_at", datetime.now(timezone.utc) + timedelta(minutes=5)),
            created_at=kw.pop("created_at", datetime.now(timezone.utc)), **kw)

    async def next_notification(self, timeout: float = 5.0) -> Notification | NotificationRejected:
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def customer_pays(self, **key: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.base_url}/_sim/customer/pay", json=key) as r:
                return await r.json()

    async def sim_order(self, out_trade_no: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.base_url}/_sim/orders/{out_trade_no}") as r:
                return await r.json()

    @classmethod
    @asynccontextmanager
    async def start(cls, name: str, keys_dir: Path, *, timeout: float = 1.0, slow_seconds: float = 2.0,
                    overrides: dict[str, Any] | None = None) -> AsyncIterator["SimPair"]:
        sim_port, recv_port = free_port(), free_port()
        notify_base = f"http://127.0.0.1:{recv_port}"
        cfg, sims = devkeys.generate(keys_dir, {name: sim_port}, notify_base, slow_seconds=slow_seconds)
        table = dict(cfg[name], timeout=timeout, **(overrides or {}))
        settings = channel_settings(name, table, ADAPTERS[name].default_recovery)

        sim_app = SIMULATORS[name](sims[name])
        sim_runner = web.AppRunner(sim_app)
        await sim_runner.setup()
        await web.TCPSite(sim_runner, "127.0.0.1", sim_port, backlog=LISTEN_BACKLOG).start()

        session = ProviderClient()
        adapter = ADAPTERS[name](settings, ChannelHttp(session, name, timeout))
        pair = cls(name, adapter, sim_app[STATE_KEY], f"http://127.0.0.1:{sim_port}", notify_base)

        async def receive(request: web.Request) -> web.Response:
            kind = "refund" if request.path.endswith("/refund") else "payment"
            body = await request.read()
            try:
                note: Any = await adapter.parse_notification(kind, request.headers, body)
                ack = adapter.ack(True)
            except NotificationRejected as e:
                note, ack = e, adapter.ack(False)
            pair.notifications.append(note)
            pair._queue.put_nowait(note)
            return web.Response(status=ack.status, body=ack.body, content_type=ack.content_type.split(";")[0])

        recv_app = web.Application()
        recv_app.router.add_post(f"/notify/{name}", receive)
        recv_app.router.add_post(f"/notify/{name}/refund", receive)
        recv_runner = web.AppRunner(recv_app)
        await recv_runner.setup()
        await web.TCPSite(recv_runner, "127.0.0.1", recv_port, backlog=LISTEN_BACKLOG).start()
        try:
            yield pair
        finally:
            await adapter.aclose()
            await session.close()
            await recv_runner.cleanup()
            await sim_runner.cleanup()
