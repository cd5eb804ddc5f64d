"""``make peak``: the festival peak check, 5,000 payments a second for five minutes.

One command on a machine with 16 or more cores: brings up the whole stack
(loadtest/stack.py: Postgres — the machine's if it answers, else its own,
tuned for the machine; ``--postgres own`` always its own —, the broker, the simulators, paycore with a worker
per ~400 payments/s on its own cores), runs the festival mix
(loadtest/locustfile.py) with distributed locust (one worker process per
core it is given), and prints the verdict (rate within 3 %, failures ≤ 0.1 %,
p99 of POS-facing calls ≤ 500 ms) and what each component cost: CPU seconds,
cores busy on average and µs per payment for paycore, Postgres, the
simulators, the broker and locust.

``--scale`` runs the same check scaled down: ``--scale 0.1`` is 500 payments/s
with the workers and locust processes sized for that rate (``make peak
SCALE=0.1``). Exit status: locust's (0 pass, 1 miss).

    python -m loadtest.peak [--scale 1.0] [--duration 300] [--workers N] [--out peak.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from loadtest.run import run_locust
from loadtest.stack import BackendCpu, BenchStack, cpu_plan
from paycore.runtime import run as _run

PEAK_TPS = 5000.0
PER_WORKER_TPS = 400.0   # the mix at ~70 % of a core (docs/performance.md, capacity model)


#: from this many workers on, the relay runs as a process of its own (kafka.relay = "separate"): the
#: worker that would lead it carries ~5–10 % more CPU than its siblings, which SO_REUSEPORT feeds evenly
SEPARATE_RELAY_FROM = 4


def plan(scale: float, cores: int, workers: int = 0, processes: int = 0, relay: str = "auto") -> dict[str, Any]:
    """Rate, paycore workers, locust processes and who relays for ``scale`` on ``cores`` cores: paycore
    gets at most half the cores, locust a quarter (the rest: Postgres, the simulators, the broker)."""
    tps = PEAK_TPS * scale
    w = workers or max(1, min(max(cores // 2, 1), math.ceil(tps / PER_WORKER_TPS)))
    p = processes or (max(1, cores // 4) if cores >= 8 else 1)
    if relay == "auto":
        relay = "separate" if w >= SEPARATE_RELAY_FROM else "workers"
    return {"target_tps": tps, "workers": w, "locust_processes": p,
            "users": max(10, math.ceil(tps / 2)), "relay": relay}


class Meter:
    """CPU seconds of each component between ``start`` and ``stop`` (call both inside the event loop).

    Postgres's are its backends', sampled over the window (loadtest.stack.BackendCpu): a backend
    that ends inside it (an autovacuum worker, a recycled pool connection) counts up to its last
    sample instead of taking its whole life out of the difference of two sums."""

    def __init__(self, stack: BenchStack) -> None:
        self.parts = {"paycore": stack.paycore_cpu, "simulators": stack.sims_cpu,
                      "broker": stack.broker_cpu, "locust": self._waited_children}
        self.pg = BackendCpu(stack.dbname)
        self.sampler: asyncio.Task | None = None
        self.t0 = 0.0
        self.c0: dict[str, float] = {}

    @staticmethod
    def _waited_children() -> float:
        t = os.times()
        return t.children_user + t.children_system   # locust and its workers, once they have exited

    def start(self) -> None:
        self.t0, self.c0 = time.monotonic(), {k: f() for k, f in self.parts.items()}
        self.pg.start()
        self.sampler = asyncio.get_running_loop().create_task(self.pg.sampling())

    def stop(self, payments: float) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        if self.sampler is not None:
            self.sampler.cancel()
        self.pg.sample()
        used = {k: f() - self.c0[k] for k, f in self.parts.items()}
        return cpu_table({"paycore": used.pop("paycore"), "postgres": self.pg.seconds(), **used}, wall, payments)


#: the stack kept at least this share of the machine's cores busy: the machine, not one part, ran out
SATURATED = 0.85


def cpu_table(seconds: dict[str, float], wall: float, payments: float) -> dict[str, Any]:
    """CPU seconds per component over ``wall`` seconds → seconds, cores busy and µs per payment
    each, and the same for the whole stack under ``all``."""
    out: dict[str, Any] = {"wall_s": round(wall, 1)}
    for k, s in {**seconds, "all": sum(seconds.values())}.items():
        out[k] = {"cpu_s": round(s, 1), "cores": round(s / wall, 2),
                  "us_per_payment": round(s / payments * 1e6) if payments else None}
    return out


def saturated(cpu: dict[str, Any], cores: int) -> bool:
    return cpu["all"]["cores"] >= SATURATED * cores


async def main_async(args) -> int:
    cores = os.cpu_count() or 1
    p = plan(args.scale, cores, args.workers, args.processes, args.relay)
    pin = cores >= 8 and not args.no_pin
    paycore_cpus, _ = cpu_plan(p["workers"]) if pin else (None, None)
    var = Path(args.var or tempfile.mkdtemp(prefix="paycore-peak-"))
    stack = BenchStack(var, workers=p["workers"], paycore_cpus=paycore_cpus, pg=args.postgres, relay=p["relay"])
    print(f"peak check at scale {args.scale}: {p['target_tps']:.0f} payments/s for {args.duration:.0f} s; "
          f"{cores} cores: paycore {p['workers']} worker(s) on {paycore_cpus or 'any core'} "
          f"(relay: {'its own process' if p['relay'] == 'separate' else 'in a worker'}), "
          f"locust {p['locust_processes']} process(es), {p['users']} users", file=sys.stderr, flush=True)
    clean = False
    try:
        await stack.start()
        ns = argparse.Namespace(
            target_tps=p["target_tps"], run_time=f"{int(args.duration)}s", users=p["users"], spawn_rate=0.0,
            processes=p["locust_processes"], p99_ms=args.p99_ms, max_fail_ratio=0.001, warmup_s=args.warmup_s,
            out=None)
        sims = {c: stack.sim_url(c) for c in ("wechatpay", "alipay", "unionpay", "bankwallet") if c in stack.sim_ports}
        conn = await asyncpg.connect(stack.db_url)
        try:
            before = await conn.fetchval("select count(*) from payments")
            meter = Meter(stack)
            meter.start()
            code = await asyncio.to_thread(run_locust, ns, stack.base, "m_bench", stack.secret, sims)
            made = await conn.fetchval("select count(*) from payments") - before
            cpu = meter.stop(made)
            outbox = await conn.fetchval("select count(*) from outbox")
        finally:
            await conn.close()
        verdict = {"scale": args.scale, "target_tps": p["target_tps"], "duration_s": args.duration,
                   "cores": cores, "paycore_workers": p["workers"], "relay": p["relay"],
                   "locust_processes": p["locust_processes"],
                   "postgres": stack.postgres, "postgres_tuning": stack.pg_settings,
                   "dirty_background": stack.dirty_background_note,
                   "payments_created": made,
                   "outbox_left": outbox, "cpu": cpu, "machine_saturated": saturated(cpu, cores),
                   "passed": code == 0, "loadavg_1m": os.getloadavg()[0]}
        print("PAYCORE-PEAK " + json.dumps(verdict), flush=True)
        if code != 0 and verdict["machine_saturated"]:
            print(f"the stack kept {cpu['all']['cores']} of {cores} cores busy ({cpu['all']['us_per_payment']} µs of "
                  f"CPU per payment, all parts together): this machine ran out, not one part of it — run the check "
                  f"on more cores, or at a lower --scale (docs/performance.md, capacity model)",
                  file=sys.stderr, flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(verdict, indent=2) + "\n")
        clean = True
        return code
    finally:
        await stack.stop(remove_var=clean and not args.var)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest.peak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of 5,000 payments/s (0.1: 500/s)")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    ap.add_argument("--warmup-s", type=float, default=15.0, help="seconds left out of the rate check")
    ap.add_argument("--p99-ms", type=float, default=500.0)
    ap.add_argument("--workers", type=int, default=0, help="paycore workers (default: one per 400/s, ≤ cores/2)")
    ap.add_argument("--processes", type=int, default=0, help="locust worker processes (default: cores/4)")
    ap.add_argument("--postgres", choices=("auto", "own", "machine"), default="auto",
                    help="auto: the machine's if it answers, else one of its own; own: a private one sized for "
                         "the machine (loadtest/stack.py); machine: the machine's, as its owner set it")
    ap.add_argument("--relay", choices=("auto", "workers", "separate"), default="auto",
                    help=f"kafka.relay; auto: its own process from {SEPARATE_RELAY_FROM} workers on")
    ap.add_argument("--no-pin", action="store_true", help="do not pin paycore to its own cores")
    ap.add_argument("--var", default=None)
    ap.add_argument("--out", default=None, help="write the verdict JSON here")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 4:
        ap.error("--scale must be in (0, 4]")
    return int(_run(main_async(args)))


if __name__ == "__main__":
    sys.exit(main())
