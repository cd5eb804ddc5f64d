"""``paycore split show|list`` and ``paycore payout show|list|requery``: what operators look at
and do about money moved after a payment. The domain functions live in paycore.core.splits and
paycore.core.payouts; this module only parses arguments and prints JSON (one object per line)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from channels.base import ChannelError, UnsupportedFlow
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from paycore.cli.common import load, with_connection
from paycore.core import payouts, splits
from paycore.core.models import dumps


def _print(obj: dict[str, Any]) -> None:
    print(dumps(obj).decode())


def split_json(s: splits.Split, returns: list[splits.SplitReturn] | None = None) -> dict[str, Any]:
    out = dict(s.to_api(), amount=s.amount, finish=s.finish, returned=s.returned, merchant_id=s.merchant_id,
               channel_split_no=s.channel_split_no, failure=s.failure, created_at=s.created_at,
               updated_at=s.updated_at, next_check_at=s.next_check_at, checks=s.checks)
    if returns is not None:
        out["returns"] = [r.to_api() for r in returns]
    return out


def payout_json(p: payouts.Payout) -> dict[str, Any]:
    # the name stays masked here as everywhere: the sealed one is for the channel only
    return dict(p.event_body()["payout"], merchant_id=p.merchant_id, channel_payout_no=p.channel_payout_no,
                business_day=p.business_day.isoformat(), next_check_at=p.next_check_at, checks=p.checks)


def cmd_split(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)

    async def main(conn: asyncpg.Connection) -> int:
        if args.action == "show":
            s = await splits.load_split(conn, args.id)
            if s is None:
                print(f"no split {args.id}", file=sys.stderr)
                return 1
            _print(split_json(s, await splits.returns_of(conn, s.id)))
            return 0
        for s in await splits.list_splits(conn, payment_id=args.payment, merchant_id=args.merchant,
                                          status=args.status, limit=args.limit):
            _print(split_json(s))
        return 0

    return with_connection(cfg, main)


def cmd_payout(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)

    async def main(conn: asyncpg.Connection) -> int:
        if args.action == "list":
            for p in await payouts.listing(conn, merchant_id=args.merchant, status=args.status, limit=args.limit):
                _print(payout_json(p))
            return 0
        p = await payouts.load(conn, args.id)
        if p is None:
            print(f"no payout {args.id}", file=sys.stderr)
            return 1
        if args.action == "show":
            _print(payout_json(p))
            return 0
        return await _requery(conn, cfg, p)

    return with_connection(cfg, main)


async def _requery(conn: asyncpg.Connection, cfg: Any, p: payouts.Payout) -> int:
    """Ask the payout's channel now; a final answer is applied (event, webhook) like recovery's."""
    settings = cfg.channels.get(p.channel)
    if settings is None or p.channel not in ADAPTERS:
        print(f"channel {p.channel} is not configured", file=sys.stderr)
        return 2
    async with ProviderClient() as session:
        adapter = ADAPTERS[p.channel](settings, ChannelHttp(session, p.channel, max(settings.timeout, 10.0)))
        try:
            result, after = await payouts.query_once(conn, adapter, p)
        except (ChannelError, UnsupportedFlow) as e:
            print(f"{p.channel} could not say ({type(e).__name__}): {e}", file=sys.stderr)
            return 2
        finally:
            await adapter.aclose()
    _print({"channel_status": str(result.status), "channel_code": result.failure_code,
            "before": p.status, "payout": payout_json(after)})
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("split", help="profit-sharing splits (分账): show, list")
    ssub = s.add_subparsers(dest="action", required=True)
    a = ssub.add_parser("show", help="one split with its receivers and returns")
    a.add_argument("id", help="split id (spl_...)")
    a = ssub.add_parser("list", help="recent splits, newest first")
    a.add_argument("--payment", help="payment id")
    a.add_argument("--merchant", help="merchant id")
    a.add_argument("--status", choices=("PROCESSING", "SUCCEEDED", "FAILED"))
    a.add_argument("--limit", type=int, default=50)
    s.set_defaults(fn=cmd_split)

    s = sub.add_parser("payout", help="payouts (转账/代付): show, list, requery")
    psub = s.add_subparsers(dest="action", required=True)
    a = psub.add_parser("show", help="one payout")
    a.add_argument("id", help="payout id (po_...)")
    a = psub.add_parser("list", help="recent payouts, newest first")
    a.add_argument("--merchant", help="merchant id")
    a.add_argument("--status", choices=("PROCESSING", "SUCCEEDED", "FAILED", "RETURNED"))
    a.add_argument("--limit", type=int, default=50)
    a = psub.add_parser("requery", help="ask the channel now and apply a final answer")
    a.add_argument("id", help="payout id (po_...)")
    s.set_defaults(fn=cmd_payout)
