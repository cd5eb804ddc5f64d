"""``make loadtest``: the locust load test, headless, with its pass/fail check.

Without ``--host`` it brings up a whole stack on this machine first
(loadtest/stack.py: Postgres, the broker, the simulators, paycore with
``--paycore-workers`` workers) and points locust at it; with ``--host`` (and
``--merchant``, ``--secret``, ``--sims``) it targets a running one.

Exits with locust's exit code: 0 when the achieved rate of new payments, the
failure ratio and the p99 all pass (see loadtest/locustfile.py), 1 when one
misses. The verdict is also printed as one ``PAYCORE-LOADTEST {json}`` line
and written to ``--out`` when given.

    python -m loadtest.run --target-tps 300 -t 60
    python -m loadtest.run --target-tps 5000 --processes -1 --paycore-workers 8
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from paycore.runtime import run as _run  # uvloop when present

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def locust_argv(args, host: str, merchant: str, secret: str,
                sims: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    users = args.users or max(10, math.ceil(args.target_tps / 2))
    spawn = args.spawn_rate or max(1.0, users / 5)
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(spawn), "-t", args.run_time, "--stop-timeout", "10", "--host", host,
            "--target-tps", str(args.target_tps), "--p99-ms", str(args.p99_ms),
            "--max-fail-ratio", str(args.max_fail_ratio), "--warmup-s", str(args.warmup_s),
            "--merchant", merchant, "--sims", json.dumps(sims), "--loglevel", "WARNING"]
    if args.processes and args.processes != 1:
        argv += ["--processes", str(args.processes)]
    env_secret = {"PAYCORE_SECRET": secret}   # not on the command line, where `ps` would show it
    return argv, env_secret


def run_locust(args, host: str, merchant: str, secret: str, sims: dict[str, str]) -> int:
    argv, extra_env = locust_argv(args, host, merchant, secret, sims)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra_env)
    print("running:", " ".join(a if a != secret else "***" for a in argv), file=sys.stderr, flush=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    verdict = None
    assert proc.stdout
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("PAYCORE-LOADTEST "):
            verdict = json.loads(line.split(" ", 1)[1])
    code = proc.wait()
    if args.out and verdict is not None:
        Path(args.out).write_text(json.dumps(dict(verdict, exit_code=code), indent=2) + "\n")
    return code


async def with_stack(args) -> int:
    from loadtest.stack import BenchStack, cpu_plan
    paycore_cpus, _ = cpu_plan(args.paycore_workers) if args.pin else (None, None)
    stack = BenchStack(Path(args.var or tempfile.mkdtemp(prefix="paycore-loadtest-")), workers=args.paycore_workers,
                       sim_latency_ms=args.sim_latency_ms, paycore_cpus=paycore_cpus)
    print(f"bringing up the stack in {stack.var} (paycore workers: {args.paycore_workers}) …", file=sys.stderr,
          flush=True)
    clean = False
    try:
        await stack.start()
        sims = {c: stack.sim_url(c) for c in ("wechatpay", "alipay", "unionpay", "bankwallet") if c in stack.sim_ports}
        code = await asyncio.to_thread(run_locust, args, stack.base, "m_bench", stack.secret, sims)
        clean = True
        return code
    finally:
        await stack.stop(remove_var=clean and not args.var)   # an aborted run keeps paycore's log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-tps", type=float, default=5000.0, help="new payments per second (default 5000)")
    ap.add_argument("-t", "--run-time", default="60s", help="locust run time (default 60s)")
    ap.add_argument("-u", "--users", type=int, default=0, help="default: target / 2 (each user ≤ 2 payments/s)")
    ap.add_argument("-r", "--spawn-rate", type=float, default=0.0, help="default: users / 5 (5 s ramp)")
    ap.add_argument("--processes", type=int, default=1, help="locust worker processes (-1: one per core)")
    ap.add_argument("--p99-ms", type=float, default=500.0)
    ap.add_argument("--max-fail-ratio", type=float, default=0.001)
    ap.add_argument("--warmup-s", type=float, default=10.0)
    ap.add_argument("--host", default=None, help="a running paycore (else a local stack is brought up)")
    ap.add_argument("--merchant", default=os.environ.get("PAYCORE_MERCHANT", "m_demo"))
    ap.add_argument("--secret", default=os.environ.get("PAYCORE_SECRET", ""))
    ap.add_argument("--sims", default=os.environ.get("PAYCORE_SIMS", "{}"), help='JSON {"channel": "url"}')
    ap.add_argument("--paycore-workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--pin", action="store_true", help="pin paycore to its own cores with taskset")
    ap.add_argument("--sim-latency-ms", type=float, default=0.0)
    ap.add_argument("--var", default=None)
    ap.add_argument("--out", default=None, help="write the verdict JSON here")
    args = ap.parse_args(argv)
    if args.host:
        if not args.secret:
            ap.error("--secret (or PAYCORE_SECRET) is needed with --host")
        return run_locust(args, args.host, args.merchant, args.secret, json.loads(args.sims))
    return int(_run(with_stack(args)))


if __name__ == "__main__":
    sys.exit(main())
