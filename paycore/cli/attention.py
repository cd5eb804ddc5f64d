"""Operators' exception tools: ``paycore attention list|show|resolve`` and
``paycore payment show|requery``. Resolutions and requeries go through the
engine (journal, outbox, webhooks), never through hand-edited rows."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any, AsyncIterator

from channels.client import ProviderClient
from paycore.cli.common import load, run, with_connection
from paycore.config import Config
from paycore.core import attention
from paycore.core.breaker import Breaker
from paycore.core.engine import Engine
from paycore.core.journal import Journal
from paycore.core.routing import Router
from paycore.errors import PaycoreError
from paycore.http.app import build_adapters
from paycore.metrics import Metrics
from paycore.storage import db
from paycore.textfmt import cell, render_table


@contextlib.asynccontextmanager
async def engine_for(cfg: Config) -> AsyncIterator[Engine]:
    """An engine of this process: its own small pool, journal and channel clients."""
    metrics = Metrics()
    pool = await db.create_pool(cfg.database, min_size=1, max_size=2)
    journal = Journal(pool, metrics=metrics)
    journal.start()
    session = ProviderClient()
    adapters = build_adapters(cfg, session, metrics)
    try:
        eng = Engine(cfg, pool, journal, adapters, {n: Breaker(n, metrics=metrics) for n in adapters},
                     Router(cfg.routing), metrics)
        try:
            yield eng
        finally:
            await eng.calls.close()
    finally:
        await journal.stop()
        for a in adapters.values():
            await a.aclose()
        await session.close()
        await pool.close()


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return cell(v) if hasattr(v, "isoformat") else v


def _print(obj: Any) -> None:
    print(json.dumps(_plain(obj), indent=2, ensure_ascii=False, default=str))


def cmd_attention(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.action == "resolve":
        async def resolve() -> int:
            async with engine_for(cfg) as eng:
                try:
                    _print(await eng.resolve_attention(args.id, args.resolution, actor=args.actor, reason=args.reason))
                except PaycoreError as e:
                    print(f"{e.code}: {e.message}", file=sys.stderr)
                    return 1
            return 0
        return run(resolve())

    async def main(conn: Any) -> int:
        if args.action == "list":
            rows = await attention.list_items(conn, status=args.status, merchant_id=args.merchant, kind=args.kind,
                                              limit=args.limit, before_id=args.before)
            if args.json:
                for r in rows:
                    print(json.dumps(_plain(r), ensure_ascii=False, default=str))
            else:
                cols = ("id", "kind", "status", "payment_id", "merchant_id", "channel", "created_at", "resolution")
                print(render_table(rows, cols) if rows else "no attention items")
            return 0
        item = await attention.get_item(conn, args.id)
        if item is None:
            print(f"no attention item {args.id}", file=sys.stderr)
            return 1
        _print(dict(item, actions=attention.ACTIONS.get(item["kind"], ("acknowledge",))))
        return 0

    return with_connection(cfg, main)


def cmd_payment(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.action == "requery":
        async def requery() -> int:
            async with engine_for(cfg) as eng:
                try:
                    p, res = await eng.requery(args.id)
                except PaycoreError as e:
                    print(f"{e.code}: {e.message}", file=sys.stderr)
                    return 1
            _print({"channel_status": str(res.status) if res else None, "payment": p.to_api()})
            return 0
        return run(requery())

    async def show(conn: Any) -> int:
        detail = await attention.payment_detail(conn, args.id)
        if detail is None:
            print(f"no payment {args.id}", file=sys.stderr)
            return 1
        _print(detail)
        return 0

    return with_connection(cfg, show)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("attention", help="the needs-attention queue: list, show, resolve")
    asub = s.add_subparsers(dest="action", required=True)
    a = asub.add_parser("list", help="items, newest first")
    a.add_argument("--status", choices=attention.STATUSES)
    a.add_argument("--kind", choices=attention.KINDS)
    a.add_argument("--merchant", help="merchant id")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--before", type=int, help="only items with a smaller id (paging)")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a = asub.add_parser("show", help="one item with its evidence and the actions that resolve it")
    a.add_argument("id", type=int)
    a = asub.add_parser("resolve", help="resolve an item through the engine (journaled: who, what, why)")
    a.add_argument("id", type=int)
    a.add_argument("resolution", metavar="ACTION", help="one of the item's actions (see `attention show`)")
    a.add_argument("--actor", required=True, help="who resolves it")
    a.add_argument("--reason", required=True, help="why")
    s.set_defaults(fn=cmd_attention)

    s = sub.add_parser("payment", help="one payment: show (row, refunds, events, attention), requery")
    psub = s.add_subparsers(dest="action", required=True)
    a = psub.add_parser("show", help="the payment with its refunds, events, attention items and webhooks")
    a.add_argument("id")
    a = psub.add_parser("requery", help="ask the channel now and apply its answer through the engine")
    a.add_argument("id")
    s.set_defaults(fn=cmd_payment)
