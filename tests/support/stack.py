"""The real stack for integration tests: Postgres (the machine's, a fresh
database per session), the Tansu broker, all simulators over HTTP, and
paycore itself as a subprocess (``paycore serve``) so that tests can kill and
restart it like an operator would.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson

from simulators import devkeys
from paycore.storage import db
from devstack import stack as devstack
from paycore.merchants import store as merchants
from paycore.merchants.auth import SecretBox, signed_headers
from paycore.config import DatabaseConfig
from channels.secrets import Secret
from tests.support import leaks

PG_ADMIN = os.environ.get("PAYCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

#: (what paycore talks to: "postgres", "kafka" or a channel, its real port) → the port paycore is to use
Proxy = Callable[[str, int], Awaitable[int]]

#: fast recovery cadence for tests (the real ones are seconds to a minute). "User paying then
#: success" needs three queries 0.3 s apart; give_up_after leaves room for a query or two that a
#: loaded CI machine delays by its 1 s timeout (at 2.5 s one such payment was reversed in a CI run)
TEST_RECOVERY = {"first_delay": 0.3, "interval": 0.3, "give_up_after": 4.0, "expiry_grace": 1.0,
                 "refund_deadline": 4.0}
TEST_TIMEOUT = 1.0
SLOW_SECONDS = 1.6
TRUSTED_PROXY = "127.0.0.9"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error(self) -> str | None:
        return (self.body or {}).get("error", {}).get("code") if isinstance(self.body, dict) else None


@dataclass
class Stack:
    var: Path
    db_url: str
    broker: devstack.Broker
    sims: devstack.Simulators
    sim_settings: dict[str, Any]
    config_path: Path
    port: int
    master_key: str
    merchant_id: str = "m_test"
    secret: str = ""
    proc: subprocess.Popen | None = None
    session: aiohttp.ClientSession | None = None
    pool: asyncpg.Pool | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    ops_token: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sim_url(self, channel: str) -> str:
        s = self.sim_settings[channel]
        return f"http://{s.host}:{s.port}"

    # -- paycore process --------------------------------------------------
    def start_paycore(self, workers: int = 1) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.log_path = self.var / "paycore.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paycore.cli", "--config", str(self.config_path), "serve", "--workers",
             str(workers)], stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        import urllib.request
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"paycore exited: see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                time.sleep(0.1)
        raise TimeoutError("paycore did not become ready")

    def kill_paycore(self, sig: int = signal.SIGKILL, wait: float = 10) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(wait)

    def stop_paycore(self) -> None:
        # a graceful stop drains in-flight requests (up to 5 s) and the relay's last batch first
        self.kill_paycore(signal.SIGTERM, wait=30)

    # -- API client -------------------------------------------------------
    async def api(self, method: str, path: str, body: Any = None, *, merchant: str | None = None,
                  secret: str | None = None, headers: dict[str, str] | None = None, raw: bytes | None = None,
                  ts: int | None = None, nonce: str | None = None) -> Reply:
        assert self.session is not None
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
        h = signed_headers(merchant or self.merchant_id, secret or self.secret, method, path, data, ts=ts,
                           nonce=nonce)
        if headers:
            h.update(headers)
        async with self.session.request(method, self.base + path, data=data, headers=h) as r:
            text = await r.read()
            if r.status >= 400:   # every error body the suite saw, for the test that greps them for secrets
                with open(self.var / "error-bodies.log", "ab") as f:
                    f.write(b"%d %s %s " % (r.status, method.encode(), path.encode()[:200]) + text[:4096] + b"\n")
            try:
                parsed = orjson.loads(text) if text else None
            except orjson.JSONDecodeError:
                parsed = text
            return Reply(r.status, parsed, r.headers)

    async def pay(self, **fields: Any) -> Reply:
        body = {"merchant_order_no": "o" + secrets.token_hex(10), "currency": "CNY", "subject": "test"}
        body.update(fields)
        return await self.api("POST", "/v1/payments", body)

    async def wait_final(self, payment_id: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.api("GET", f"/v1/payments/{payment_id}?wait=5")
            assert r.status == 200, r.body
            if r.body["status"] not in ("PENDING", "PROCESSING") or time.monotonic() > deadline:
                return r.body
            await asyncio.sleep(0.05)

    async def sim(self, channel: str, method: str, path: str, body: Any = None) -> Any:
        assert self.session is not None
        async with self.session.request(method, self.sim_url(channel) + path, json=body) as r:
            return await r.json()

    async def customer_pays(self, channel: str, **key: str) -> Any:
        return await self.sim(channel, "POST", "/_sim/customer/pay", key)

    async def ops(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Reply:
        """The operators' API with the operator bearer token (``token=""``: none)."""
        assert self.session is not None
        tok = self.ops_token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as r:
            return Reply(r.status, await r.json(), r.headers)

    async def events(self, payment_id: str) -> list[dict[str, Any]]:
        assert self.pool is not None
        rows = await self.pool.fetch("select payload from events where payment_id = $1 order by seq", payment_id)
        return [r["payload"] for r in rows]


async def build_stack(var: Path, *, workers: int = 1, proxy: Proxy | None = None,
                      tweak: Callable[[dict[str, Any]], None] | None = None) -> Stack:
    """``proxy(name, port)`` (chaos tests) may put something in front of what paycore talks to:
    it gets "postgres", "kafka" or a channel name with the real port and returns the port paycore
    (and, for "kafka", every client) is to use. ``tweak`` edits the config overrides."""
    var.mkdir(parents=True, exist_ok=True)
    dbname = f"paycore_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'create database "{dbname}"')
    await admin.close()
    db_url = db.with_database(PG_ADMIN, dbname)
    await db.migrate(db_url)

    broker = devstack.Broker()
    paycore_db_url = db_url
    if proxy is not None:
        broker.port = devstack.free_port()
        broker.advertised_port = await proxy("kafka", broker.port)
        pg = urlsplit(db_url)
        pg_port = await proxy("postgres", pg.port or 5432)
        userinfo = pg.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"{pg.hostname}:{pg_port}"
        paycore_db_url = urlunsplit(pg._replace(netloc=netloc))
    broker.start(var)
    port = devstack.free_port()
    ports = devstack.channel_ports()
    channel_cfg, sims = devkeys.generate(var / "keys", ports, f"http://127.0.0.1:{port}", slow_seconds=SLOW_SECONDS)
    if proxy is not None:
        for name, real in ports.items():
            channel_cfg[name]["base_url"] = f"http://127.0.0.1:{await proxy(name, real)}"
    overrides = devstack.dev_overrides(paycore_db_url, broker.bootstrap, channel_cfg, host="127.0.0.1", port=port,
                                       timeout=TEST_TIMEOUT, recovery=TEST_RECOVERY)
    master = secrets.token_hex(32)
    overrides["breaker"] = {"window": 10, "min_calls": 6, "failure_ratio": 0.5, "open_seconds": 1.0}
    overrides["payments"] = {"recovery_interval": 0.1}
    overrides["journal"] = {"relay_interval_ms": 10.0, "relay_backoff_max": 1.0}
    overrides["kafka"]["send_timeout"] = 3.0
    # webhook retries in seconds, not hours (same count of attempts as production); gauges sampled often;
    # the tests' merchants receive webhooks on 127.0.0.1 over http, which production refuses
    # (tests/integration/test_webhook_destinations.py runs dispatchers with both checks on)
    overrides["webhooks"] = {"schedule": [0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "interval": 0.1,
                             "timeout": 2.0, "allow_http": True, "allow_private": True}
    overrides["metrics"] = {"sample_interval": 0.5}
    # the one-code tests' load balancer: X-Forwarded-For is believed from this address only
    overrides["onecode"] = {"trusted_proxies": [TRUSTED_PROXY]}
    overrides["settlement"] = {"fee_rule_lead": 1.0}   # a new fee rule counts after a second, not a minute
    # partition maintenance runs where a test asks for it (`paycore maintain`, tests/integration/test_data.py),
    # never as DDL in the middle of another test's timing
    overrides["data"] = {"maintain_interval": 0}
    if tweak is not None:
        tweak(overrides)
    config_path = var / "paycore.toml"
    config_path.write_text(devstack.toml_dump(overrides))

    conn = await asyncpg.connect(db_url)
    await db.init_connection(conn)
    secret = await merchants.add(conn, SecretBox(Secret(master)), "m_test", "Test merchant")
    await conn.close()
    leaks.remember(f"merchant secret of {var.name}", secret)
    leaks.remember(f"master key of {var.name}", master)

    simulators = await devstack.Simulators(sims).start()
    ops_token = secrets.token_urlsafe(24)
    leaks.remember(f"operator token of {var.name}", ops_token)
    env = dict(os.environ, PAYCORE_MASTER_KEY=master, PAYCORE_OPS_TOKEN=ops_token, PAYCORE_LOG_LEVEL="INFO",
               PYTHONUNBUFFERED="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stack = Stack(var=var, db_url=db_url, broker=broker, sims=simulators, sim_settings=sims,
                  config_path=config_path, port=port, master_key=master, secret=secret, env=env,
                  ops_token=ops_token)
    # in a thread: the loop must keep serving the simulators (and any proxies) while paycore starts
    await asyncio.to_thread(stack.start_paycore, workers)
    stack.session = aiohttp.ClientSession()
    stack.pool = await db.create_pool(DatabaseConfig(url=db_url), min_size=1, max_size=4)
    return stack


async def teardown_stack(stack: Stack) -> None:
    # in a thread: a stopping paycore still talks to Postgres and the broker, through the chaos
    # stack's proxies, which are served by this loop (blocking it here left paycore unable to finish)
    await asyncio.to_thread(stack.stop_paycore)
    if stack.session:
        await stack.session.close()
    if stack.pool:
        await stack.pool.close()
    await stack.sims.stop()
    stack.broker.stop()
    admin = await asyncpg.connect(PG_ADMIN)
    dbname = stack.db_url.rsplit("/", 1)[1]
    await admin.execute(f'drop database if exists "{dbname}" with (force)')
    await admin.close()
