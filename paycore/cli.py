"""``paycore`` command line: serve, migrate, merchant, channels, dev, sim.

Imports are done inside commands: ``serve`` must set PROMETHEUS_MULTIPROC_DIR
before the metrics module is first imported.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _setup_logging(level: str = "INFO") -> None:
    from paycore.logs import setup
    setup(level)


def _run(coro) -> Any:
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


# ------------------------------------------------------------------- serve
def _worker(config_path: str | None, workers: int, reuse_port: bool) -> None:
    from aiohttp import web

    from paycore import config as config_mod
    from paycore.api import create_app

    cfg = config_mod.load(config_path)
    _setup_logging(cfg.server.log_level)

    async def main() -> None:
        app = create_app(cfg, workers=workers)
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, cfg.server.host, cfg.server.port, reuse_port=reuse_port, backlog=4096)
        await site.start()
        logging.getLogger("paycore").info("worker %d listening on %s:%d", os.getpid(), cfg.server.host,
                                          cfg.server.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    _run(main())


def cmd_serve(args: argparse.Namespace) -> int:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="paycore-metrics-")
    from paycore import config as config_mod
    from paycore import db

    cfg = config_mod.load(args.config)
    _setup_logging(cfg.server.log_level)
    workers = args.workers or cfg.server.workers
    _run(db.migrate(cfg.database.url))
    if workers <= 1:
        _worker(args.config, 1, False)
        return 0
    import multiprocessing as mp
    import signal
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(args.config, workers, True), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()

    def forward(signum, frame):
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from paycore import config as config_mod
    from paycore import db
    cfg = config_mod.load(args.config)
    applied = _run(db.migrate(cfg.database.url))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


# ---------------------------------------------------------------- merchant
def cmd_merchant(args: argparse.Namespace) -> int:
    import asyncpg

    from paycore import config as config_mod
    from paycore import merchants
    from paycore.auth import SecretBox

    cfg = config_mod.load(args.config)

    async def main() -> int:
        conn = await asyncpg.connect(cfg.database.url)
        from paycore.db import _init_connection
        await _init_connection(conn)
        try:
            box = SecretBox(cfg.security.master_key)
            if args.action == "add":
                subs = dict(s.split("=", 1) for s in (args.sub or []))
                secret = await merchants.add(conn, box, args.id, args.name or args.id, secret=args.secret,
                                             max_amount=args.max_amount, sub_merchants=subs,
                                             rate_limit=args.rate_limit)
                print(json.dumps({"merchant_id": args.id, "secret": secret}))
            elif args.action == "list":
                for m in await merchants.listing(conn):
                    m["created_at"] = m["created_at"].isoformat()
                    print(json.dumps(m, ensure_ascii=False))
            elif args.action == "rotate-secret":
                secret = await merchants.rotate_secret(conn, box, args.id)
                print(json.dumps({"merchant_id": args.id, "secret": secret}))
            elif args.action in ("disable", "enable"):
                await merchants.set_status(conn, args.id, "disabled" if args.action == "disable" else "active")
                print(json.dumps({"merchant_id": args.id, "status": args.action + "d"}))
            elif args.action == "qrcode":
                from paycore import onecode
                out = await onecode.render_cli(conn, cfg, args)
                print(out)
        except LookupError as e:
            print(str(e), file=sys.stderr)
            return 1
        except asyncpg.UniqueViolationError:
            print(f"merchant {args.id} already exists", file=sys.stderr)
            return 1
        finally:
            await conn.close()
        return 0

    return _run(main())


# ---------------------------------------------------------------- channels
def channel_matrix() -> list[dict[str, Any]]:
    from channels.base import Flow, Method
    from channels.registry import ADAPTERS
    rows = []
    for name in sorted(ADAPTERS):
        a = ADAPTERS[name]
        # sonic is a payment code delivered by sound: every barcode channel takes it
        methods = set(a.methods) | ({Method.SONIC} if Method.BARCODE in a.methods else set())
        rows.append({"channel": name, "methods": [m.value for m in Method if m in methods],
                     "flows": [f.value for f in Flow if f in a.flows]})
    return rows


def cmd_channels(args: argparse.Namespace) -> int:
    from channels.base import Flow, Method
    rows = channel_matrix()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    methods = [m.value for m in Method]
    flows = [f.value for f in Flow]
    head = ["channel"] + methods + ["|"] + flows
    widths = [max(len(h), 10) if i == 0 else len(h) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        cells = [r["channel"]] + ["x" if m in r["methods"] else "." for m in methods] + ["|"] + \
                ["x" if f in r["flows"] else "." for f in flows]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    return 0


# --------------------------------------------------------------------- dev
def cmd_dev(args: argparse.Namespace) -> int:
    from paycore.devrun import run_dev
    return _run(run_dev(args))


def cmd_sim(args: argparse.Namespace) -> int:
    from paycore.devrun import run_simulators
    return _run(run_simulators(args))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="paycore", description="paycore payment platform")
    ap.add_argument("--config", default=None, help="TOML config (default: $PAYCORE_CONFIG)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the API (N worker processes on one port)")
    s.add_argument("--workers", type=int, default=0)
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("migrate", help="apply database migrations")
    s.set_defaults(fn=cmd_migrate)

    s = sub.add_parser("merchant", help="manage merchants")
    msub = s.add_subparsers(dest="action", required=True)
    a = msub.add_parser("add")
    a.add_argument("id")
    a.add_argument("--name")
    a.add_argument("--secret", help="default: generated")
    a.add_argument("--max-amount", type=int, help="fen")
    a.add_argument("--rate-limit", type=float, help="requests per second")
    a.add_argument("--sub", action="append", metavar="CHANNEL=SUB_MCH_ID", help="sub-merchant id at a channel")
    msub.add_parser("list")
    for name in ("rotate-secret", "disable", "enable"):
        msub.add_parser(name).add_argument("id")
    q = msub.add_parser("qrcode", help="render the merchant's static one-code QR")
    q.add_argument("id")
    q.add_argument("--store", default=None)
    q.add_argument("--out", required=True, help="file.png or file.svg")
    s.set_defaults(fn=cmd_merchant)

    s = sub.add_parser("channels", help="the channel x method x flow matrix")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_channels)

    s = sub.add_parser("dev", help="the whole platform on embedded defaults (make run)")
    s.add_argument("--var", default="var/dev", help="state directory")
    s.add_argument("--sim-latency-ms", type=float, default=0.0)
    s.set_defaults(fn=cmd_dev)

    s = sub.add_parser("sim", help="run the channel simulators alone")
    s.add_argument("--var", default="var/dev")
    s.add_argument("--base-port", type=int, default=9101)
    s.add_argument("--public-url", default="http://127.0.0.1:8080")
    s.add_argument("--latency-ms", type=float, default=0.0)
    s.set_defaults(fn=cmd_sim)

    from paycore import cli_ext
    cli_ext.register(sub)

    args = ap.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
