"""The channel simulators for the compose stack (deploy/docker-compose.yml).

``config``: generate (or reuse) the development keys of every channel in a
shared volume and write paycore's ``[channels.*]`` config pointing at the
``sim`` service. Run once before the simulators and paycore start, so both
sides use the same keys.

``serve``: run the simulators on 0.0.0.0 with those keys (``python -m devstack sim``
binds to 127.0.0.1 only, which another container cannot reach).

The simulators stand in for the real providers in a demo or a load test; a
real deployment writes ``[channels.*]`` with the providers' URLs and its own
keys instead (docs/deploy.md).
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from simulators import devkeys
from devstack import stack as devstack


def _ports(base: int) -> dict[str, int]:
    return devstack.channel_ports(base)


def cmd_config(args: argparse.Namespace) -> int:
    var = Path(args.var)
    channel_cfg, _ = devkeys.generate(var / "keys", _ports(args.base_port), args.public_url, host=args.sim_host)
    out = Path(args.out)
    out.write_text("# written by devstack/compose.py (python -m devstack.compose): paycore's side of the channel simulators\n"
                   + devstack.toml_dump({"channels": channel_cfg}) + "\n")
    print(f"wrote {out} ({len(channel_cfg)} channels, simulators at {args.sim_host}:{args.base_port}+)")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from paycore.logs import setup
    setup("INFO")
    _, sims = devkeys.generate(Path(args.var) / "keys", _ports(args.base_port), args.public_url, host=args.bind,
                               latency_ms=args.latency_ms)
    running = await devstack.Simulators(sims).start()
    print("simulators:", ", ".join(f"{n}:{s.port}" for n, s in sims.items()), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack.compose")
    ap.add_argument("--var", default="/var/lib/paycore", help="where the keys live (shared volume)")
    ap.add_argument("--base-port", type=int, default=9101)
    ap.add_argument("--public-url", default="http://paycore:8080", help="where simulators post notifications")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("--sim-host", default="sim")
    c.add_argument("--out", default="/var/lib/paycore/channels.toml")
    s = sub.add_parser("serve")
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--latency-ms", type=float, default=0.0)
    args = ap.parse_args(argv)
    if args.cmd == "config":
        return cmd_config(args)
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
