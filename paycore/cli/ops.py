"""Operators' commands: channels, webhooks, reconcile, consume settlement, audit."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import date, datetime
from typing import Any

import asyncpg
from prometheus_client import start_http_server

from channels.base import ChannelError, Flow, Method, UnsupportedFlow
from channels.registry import ADAPTERS
from paycore.cli.common import load, run, with_connection
from paycore.ops import reconcile, webhooks
from paycore.outbox import audit
from paycore.outbox.settlement import SettlementConsumer, SettlementMetrics, log as settlement_log
from paycore.storage import db
from paycore.textfmt import cell, render_table


# ---------------------------------------------------------------- channels
def channel_matrix() -> list[dict[str, Any]]:
    rows = []
    for name in sorted(ADAPTERS):
        a = ADAPTERS[name]
        # sonic is a payment code delivered by sound: every barcode channel takes it
        methods = set(a.methods) | ({Method.SONIC} if Method.BARCODE in a.methods else set())
        rows.append({"channel": name, "methods": [m.value for m in Method if m in methods],
                     "flows": [f.value for f in Flow if f in a.flows]})
    return rows


def cmd_channels(args: argparse.Namespace) -> int:
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


# ---------------------------------------------------------------- webhooks
def cmd_webhooks(args: argparse.Namespace) -> int:
    cfg = load(args)

    async def main(conn: asyncpg.Connection) -> int:
        if args.action == "list":
            rows = await webhooks.listing(conn, status=args.status, payment_id=args.payment,
                                          merchant_id=args.merchant, limit=args.limit)
            if args.json:
                for r in rows:
                    print(json.dumps({k: cell(v) if hasattr(v, "isoformat") else v for k, v in r.items()}))
            else:
                cols = tuple(c for c in webhooks.LIST_COLUMNS if c not in ("merchant_id", "next_attempt_at"))
                print(render_table(rows, cols) if rows else "no webhooks")
            return 0
        if not args.ids and not args.failed:
            print("name webhook ids or event ids, or --failed", file=sys.stderr)
            return 2
        num = [int(i) for i in args.ids if i.isdigit()]
        evt = [i for i in args.ids if not i.isdigit()]
        done = await webhooks.replay(conn, ids=num, event_ids=evt, all_failed=args.failed)
        print(json.dumps({"replayed": done}))
        return 0 if done else 1

    return with_connection(cfg, main)


# --------------------------------------------------------------- reconcile
def cmd_reconcile(args: argparse.Namespace) -> int:
    cfg = load(args)
    try:
        rep = run(reconcile.run(cfg, args.channel, args.date, save=not args.no_store))
    except LookupError as e:
        print(str(e), file=sys.stderr)
        return 2
    except UnsupportedFlow:
        print(f"{args.channel} offers no statement", file=sys.stderr)
        return 2
    except ChannelError as e:
        print(f"could not fetch the {args.channel} statement: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rep.to_json(), ensure_ascii=False, indent=2) if args.json else reconcile.render(rep))
    return 0 if rep.clean else 1


# ----------------------------------------------------------------- consume
def cmd_consume(args: argparse.Namespace) -> int:
    cfg = load(args)
    if not cfg.kafka.bootstrap:
        settlement_log.error("no Kafka configured (kafka.bootstrap / PAYCORE_KAFKA_BOOTSTRAP)")
        return 2
    metrics = SettlementMetrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, args.metrics_host, registry=metrics.registry)

    async def main() -> int:
        await db.migrate(cfg.database.url)
        pool = await db.create_pool(cfg.database, min_size=1, max_size=2)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        c = SettlementConsumer(cfg, pool, args.group, batch=args.batch, session_timeout_ms=args.session_timeout_ms,
                               metrics=metrics)
        try:
            await c.run(stop)
        finally:
            await pool.close()
            settlement_log.info("settlement consumer stopped: %d events applied, %d duplicates skipped",
                                c.applied, c.duplicates)
        return 0

    return run(main())


# ------------------------------------------------------------------- audit
def cmd_audit(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)
    bootstrap = args.bootstrap or cfg.kafka.bootstrap
    if not bootstrap:
        print("no Kafka configured (kafka.bootstrap / PAYCORE_KAFKA_BOOTSTRAP)", file=sys.stderr)
        return 2
    since = datetime.fromisoformat(args.since) if args.since else None
    try:
        report = run(audit.audit(cfg.database.url, bootstrap, args.topic or cfg.kafka.topic, wait=args.wait,
                                 since=since, kafka_timeout=args.kafka_timeout))
    except Exception as e:   # Postgres or the broker unreachable (aiokafka's errors share no useful base)
        print(f"audit could not read both sides: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.table())
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("channels", help="the channel x method x flow matrix")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_channels)

    s = sub.add_parser("webhooks", help="merchant webhooks: list, replay")
    wsub = s.add_subparsers(dest="action", required=True)
    a = wsub.add_parser("list", help="recent webhooks, newest first")
    a.add_argument("--status", choices=webhooks.STATUSES)
    a.add_argument("--payment", help="payment id")
    a.add_argument("--merchant", help="merchant id")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a = wsub.add_parser("replay", help="deliver again with a fresh schedule")
    a.add_argument("ids", nargs="*", help="webhook ids (numbers) or event ids (evt_...)")
    a.add_argument("--failed", action="store_true", help="every FAILED webhook")
    s.set_defaults(fn=cmd_webhooks)

    s = sub.add_parser("reconcile", help="match a channel's daily statement against the journal")
    s.add_argument("--channel", required=True)
    s.add_argument("--date", required=True, type=date.fromisoformat,
                   help="YYYY-MM-DD (business day, [settlement] timezone: Asia/Shanghai by default)")
    s.add_argument("--json", action="store_true", help="the report as JSON instead of a table")
    s.add_argument("--no-store", action="store_true", help="do not record the run in Postgres")
    s.set_defaults(fn=cmd_reconcile)

    s = sub.add_parser("consume", help="Kafka consumers of the journal")
    csub = s.add_subparsers(dest="consumer", required=True)
    a = csub.add_parser("settlement", help="settlement lines per merchant and business day, in Postgres")
    a.add_argument("--group", default="paycore-settlement", help="consumer group id")
    a.add_argument("--batch", type=int, default=500, help="records per fetch")
    a.add_argument("--session-timeout-ms", type=int, default=10000)
    a.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on this port (0: off)")
    a.add_argument("--metrics-host", default="0.0.0.0")
    s.set_defaults(fn=cmd_consume)

    s = sub.add_parser("audit", help="compare the events in Postgres with the Kafka topic (missing, duplicated, "
                                     "out of order)")
    s.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    s.add_argument("--wait", type=float, default=30.0, help="seconds to let the relay drain the outbox first")
    s.add_argument("--since", help="only events that occurred at or after this ISO time")
    s.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the config's)")
    s.add_argument("--topic", help="default: the config's kafka.topic")
    s.add_argument("--kafka-timeout", type=float, default=60.0)
    s.set_defaults(fn=cmd_audit)
