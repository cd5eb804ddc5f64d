"""``paycore fee …`` (fee rules) and ``paycore settlement …`` (close, export, show, check, webhook)."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from channels.base import Method
from paycore.cli.common import load, with_connection
from paycore.config import Config
from paycore.core import fees
from paycore.core.validation import CHANNELS
from paycore.merchants.auth import MERCHANT_RE
from paycore.ops import reconcile
from paycore.outbox import statements
from paycore.textfmt import render_table


def _yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


# ------------------------------------------------------------------- fee
def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready, instants to the microsecond (an operator's script compares them)."""
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


def _effective_from(text: str | None, cfg: Config) -> datetime | None:
    """None/"now": as soon as allowed; YYYY-MM-DD: that business day's first instant; else an ISO instant."""
    if text is None or text == "now":
        return None
    if len(text) == 10:
        return cfg.settlement.calendar().start(date.fromisoformat(text))
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError("give the instant with its offset (e.g. 2025-06-01T00:00:00+08:00)")
    return at


def cmd_fee(args: argparse.Namespace) -> int:
    cfg = load(args)

    async def main(conn: asyncpg.Connection) -> int:
        if args.action == "list":
            rows = await fees.list_rules(conn, args.merchant)
            for r in rows:
                r["rate"] = fees.format_rate(r.pop("rate_ppm"))
            if args.json:
                for r in rows:
                    print(json.dumps(_plain(r)))
            else:
                print(render_table(rows, ("id", "merchant_id", "channel", "method", "rate", "fixed", "min_fee",
                                          "max_fee", "effective_from", "note")) if rows else "no fee rules")
            return 0
        try:
            rule = await fees.add_rule(
                conn, args.merchant, args.channel, args.method, rate_ppm=fees.parse_rate(args.rate),
                fixed=args.fixed, min_fee=args.min, max_fee=args.max,
                effective_from=_effective_from(args.effective_from, cfg), lead=cfg.settlement.fee_rule_lead,
                note=args.note)
        except ValueError as e:
            print(str(e), file=sys.stderr)
            return 2
        except asyncpg.ForeignKeyViolationError:
            print(f"no merchant {args.merchant}", file=sys.stderr)
            return 2
        rule["rate"] = fees.format_rate(rule.pop("rate_ppm"))
        print(json.dumps(_plain(rule)))
        return 0

    return with_connection(cfg, main)


# ------------------------------------------------------------ settlement
async def _show(conn: asyncpg.Connection, cfg: Config, day: date) -> dict[str, Any]:
    """The operator's view of a day: each merchant's totals, each channel's reconciliation beside them,
    and whether the statements add up to the journal."""
    cal = cfg.settlement.calendar()
    merchants = [r[0] for r in await conn.fetch(
        "select distinct merchant_id from settlement_lines where day = $1 union "
        "select merchant_id from settlement_statements where day = $1 order by 1", day)]
    days = [await statements.settlement(conn, m, day) for m in merchants]
    runs = await reconcile.latest_runs(conn, day)
    channels = sorted({c["channel"] for d in days for c in d["by_channel"]} | set(runs))
    recon = {}
    for ch in channels:
        r = runs.get(ch)
        if r is None:
            recon[ch] = "not reconciled"
        elif r["status"] == "ERROR":
            recon[ch] = "ERROR: statement not fetched"
        else:
            recon[ch] = "clean" if not r["discrepancies"] else f"{r['discrepancies']} discrepancies (run {r['id']})"
    diff = await statements.check(conn, day, cal)
    flagged = sorted(ch for ch, v in recon.items() if v != "clean")
    return {"date": day.isoformat(), "closed": await statements.is_closed(conn, day),
            "closes_at": statements.rfc3339(cal.closes_at(day)), "merchants": days, "reconciliation": recon,
            "flagged_channels": flagged,
            "journal_check": "agrees" if not diff else {
                f"{m}/{c}": {"journal": dict(zip(statements.CHECK_FIELDS, j)) if j else None,
                             "statements": dict(zip(statements.CHECK_FIELDS, s)) if s else None}
                for (m, c), (j, s) in sorted(diff.items())}}


def _render_show(v: dict[str, Any]) -> str:
    out = [f"settlement of {v['date']}: {'CLOSED' if v['closed'] else 'OPEN'} (may close from {v['closes_at']})"]
    rows = []
    for d in v["merchants"]:
        for c in d["by_channel"]:
            rows.append({"merchant": d["merchant_id"], "channel": c["channel"], "count": c["count"],
                         "gross": _yuan(c["gross"]), "refunds": _yuan(c["refunds"]), "fees": _yuan(c["fees"]),
                         "shares": _yuan(c["shares"]), "payouts": _yuan(c["payouts"]), "net": _yuan(c["net"]), "reconciliation": v["reconciliation"].get(c["channel"], "")})
        rows.append({"merchant": d["merchant_id"], "channel": "(total)", "count": d["count"],
                     "gross": _yuan(d["gross"]), "refunds": _yuan(d["refunds"]), "fees": _yuan(d["fees"]),
                     "shares": _yuan(d["shares"]), "payouts": _yuan(d["payouts"]), "net": f"{_yuan(d['net'])} (adj {_yuan(d['adjustments'])})", "reconciliation": ""})
    out.append(render_table(rows, ("merchant", "channel", "count", "gross", "refunds", "fees", "shares",
                                   "payouts", "net", "reconciliation")) if rows else "no lines")
    if v["flagged_channels"]:
        out.append("FLAGGED: reconciliation not clean for " + ", ".join(
            f"{ch} ({v['reconciliation'][ch]})" for ch in v["flagged_channels"]))
    chk = v["journal_check"]
    out.append("journal check: statements agree with the journal" if chk == "agrees"
               else f"journal check: DIFFERENT ({', '.join(statements.CHECK_FIELDS)}): " + json.dumps(chk))
    return "\n".join(out)


def cmd_settlement(args: argparse.Namespace) -> int:
    cfg = load(args)
    cal = cfg.settlement.calendar()

    async def main(conn: asyncpg.Connection) -> int:
        if args.action == "close":
            if args.due == (args.date is not None):
                print("give --date D or --due", file=sys.stderr)
                return 2
            days = await statements.due_days(conn, cal) if args.due else [args.date]
            rc = 0
            for day in days:
                try:
                    res = await statements.close(conn, day, cal, early=args.early)
                except statements.TooEarly as e:
                    print(f"{day}: not closed: {e}", file=sys.stderr)
                    rc = 1
                    continue
                print(json.dumps({"date": day.isoformat(), "already_closed": res.already,
                                  "statements": len(res.statements), "webhooks": res.webhooks,
                                  "merchants": {s["merchant_id"]: {"net": s["net"], "file_sha256": s["file_sha256"]}
                                                for s in res.statements}}))
            return rc
        if args.action == "export":
            merchants = [args.merchant] if args.merchant else [r[0] for r in await conn.fetch(
                "select distinct merchant_id from settlement_lines where day = $1 order by 1", args.date)]
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for m in merchants:
                data, final = await statements.statement_file(conn, m, args.date)
                path = out / f"{m}_{args.date.isoformat()}.csv"
                path.write_bytes(data)
                print(json.dumps({"merchant_id": m, "file": str(path), "sha256": statements.sha256_hex(data),
                                  "final": final}))
            return 0
        if args.action in ("show", "check"):
            view = await _show(conn, cfg, args.date)
            if args.action == "check":
                print(json.dumps({"date": view["date"], "journal_check": view["journal_check"],
                                  "flagged_channels": view["flagged_channels"]}))
                return 0 if view["journal_check"] == "agrees" else 1
            print(json.dumps(view, indent=2) if args.json else _render_show(view))
            return 0
        # webhook
        url = None if args.clear else args.url
        if url is not None and not url.startswith(("https://", "http://")):
            print("the webhook URL must be http(s)", file=sys.stderr)
            return 2
        r = await conn.execute("update merchants set webhook_url = $2, updated_at = now() where id = $1",
                               args.merchant, url)
        if r.endswith(" 0"):
            print(f"no merchant {args.merchant}", file=sys.stderr)
            return 2
        print(json.dumps({"merchant_id": args.merchant, "webhook_url": url}))
        return 0

    return with_connection(cfg, main)


def _merchant(text: str) -> str:
    if not MERCHANT_RE.match(text):
        raise argparse.ArgumentTypeError("a merchant id is 1-64 characters [A-Za-z0-9_-]")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("fee", help="fee rules per merchant x channel x method (docs/settlement.md)")
    fsub = s.add_subparsers(dest="action", required=True)
    a = fsub.add_parser("add", help="a new rule; rules are never edited, a later one replaces an earlier one")
    a.add_argument("merchant", type=_merchant)
    a.add_argument("--channel", default=fees.ANY, choices=(fees.ANY, *CHANNELS))
    a.add_argument("--method", default=fees.ANY, choices=(fees.ANY, *(m.value for m in Method)))
    a.add_argument("--rate", required=True, help="0.38%%, 38bp or 3.8permille (‰)")
    a.add_argument("--fixed", type=int, default=0, help="fen added per payment")
    a.add_argument("--min", type=int, default=None, help="minimum fee per payment, fen")
    a.add_argument("--max", type=int, default=None, help="maximum fee per payment, fen")
    a.add_argument("--from", dest="effective_from", default=None,
                   help="YYYY-MM-DD (that business day), an ISO instant with offset, or now (default: as soon as "
                        "allowed, [settlement] fee_rule_lead seconds from now)")
    a.add_argument("--note", default=None)
    a = fsub.add_parser("list")
    a.add_argument("merchant", nargs="?", default=None)
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(fn=cmd_fee)

    s = sub.add_parser("settlement", help="business days: close, export statements, show, check, webhook URL")
    ssub = s.add_subparsers(dest="action", required=True)
    a = ssub.add_parser("close", help="close a business day for every merchant (statements, settlement.closed)")
    a.add_argument("--date", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    a.add_argument("--due", action="store_true", help="every day with lines whose cut-off has passed")
    a.add_argument("--early", action="store_true",
                   help="close before the cut-off (what arrives later becomes the next day's adjustments)")
    a = ssub.add_parser("export", help="write the statement files of a day (one CSV per merchant)")
    a.add_argument("--date", type=date.fromisoformat, required=True)
    a.add_argument("--merchant", type=_merchant, default=None)
    a.add_argument("--out", default=".", help="directory")
    for name, what in (("show", "each merchant's totals, reconciliation beside them, the journal check"),
                       ("check", "do the day's statements add up to the journal? (exit 1 if not)")):
        a = ssub.add_parser(name, help=what)
        a.add_argument("--date", type=date.fromisoformat, required=True)
        a.add_argument("--json", action="store_true")
    a = ssub.add_parser("webhook", help="where a merchant's settlement.closed webhooks go")
    a.add_argument("merchant", type=_merchant)
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("url", nargs="?", default=None)
    g.add_argument("--clear", action="store_true")
    s.set_defaults(fn=cmd_settlement)
