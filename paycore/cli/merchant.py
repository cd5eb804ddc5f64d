"""``paycore merchant add|list|set-late-payment|rotate-secret|disable|enable|qrcode|code …``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import asyncpg

from paycore.cli.common import load, with_connection
from paycore.config import Config
from paycore.http import onecode
from paycore.merchants import codes, plate
from paycore.merchants import store as merchants
from paycore.merchants.auth import SecretBox, key_id


def cmd_merchant(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)

    async def main(conn: asyncpg.Connection) -> int:
        box = SecretBox(cfg.security.master_key)
        try:
            if args.action == "add":
                subs = dict(s.split("=", 1) for s in (args.sub or []))
                secret = await merchants.add(conn, box, args.id, args.name or args.id, secret=args.secret,
                                             max_amount=args.max_amount, sub_merchants=subs,
                                             rate_limit=args.rate_limit, late_payment=args.late_payment)
                print(json.dumps({"merchant_id": args.id, "secret": secret, "kid": key_id(1)}))
            elif args.action == "list":
                for m in await merchants.listing(conn):
                    m["created_at"] = m["created_at"].isoformat()
                    del m["secret_version"]
                    m["previous_expires_at"] = m["previous_expires_at"] and m["previous_expires_at"].isoformat()
                    print(json.dumps(m, ensure_ascii=False))
            elif args.action == "rotate-secret":
                rot = await merchants.rotate_secret(conn, box, args.id, merchants.parse_grace(args.grace))
                until = rot.previous_expires_at
                print(json.dumps({"merchant_id": args.id, "secret": rot.secret, "kid": rot.kid,
                                  "previous_kid": rot.previous_kid,
                                  "previous_expires_at": until.isoformat() if until else None}))
            elif args.action in ("disable", "enable"):
                await merchants.set_status(conn, args.id, "disabled" if args.action == "disable" else "active")
                print(json.dumps({"merchant_id": args.id, "status": args.action + "d"}))
            elif args.action == "set-late-payment":
                await merchants.set_late_payment(conn, args.id, args.late_action)
                print(json.dumps({"merchant_id": args.id, "late_payment_action": args.late_action}))
            elif args.action == "qrcode":
                print(await _qrcode(conn, cfg, args))
        except (LookupError, ValueError) as e:
            print(str(e), file=sys.stderr)
            return 1
        except asyncpg.UniqueViolationError:
            print(f"merchant {args.id} already exists", file=sys.stderr)
            return 1
        return 0

    return with_connection(cfg, main)


async def _qrcode(conn: asyncpg.Connection, cfg: Config, args: argparse.Namespace) -> str:
    """The store's (or merchant's) default code, created if missing, rendered to print."""
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError("--out must name a .png, .svg or .pdf file")
    code = await codes.ensure_code(conn, args.id, args.store)
    if code.status != "active":
        raise LookupError(f"code {code.code} is disabled; enable it before printing it")
    url = codes.public_url(cfg.server.public_base_url, code.code)
    if out.suffix.lower() == ".pdf":   # the print-ready plate
        plate.render_plate(out, url=url, merchant_name=code.merchant_name, code=code.code, store_id=code.store_id,
                           amount=code.amount, apps=[a.zh for a in onecode.APPS])
    else:
        codes.render_qr(url, out, title=f"{code.merchant_name} · {url}")
    return json.dumps({"code": code.code, "merchant_id": code.merchant_id, "store_id": code.store_id,
                       "url": url, "out": str(out)}, ensure_ascii=False)


def _code_json(c: codes.Code, cfg: Config) -> str:
    return json.dumps({"code": c.code, "merchant_id": c.merchant_id, "store_id": c.store_id, "amount": c.amount,
                       "status": c.status, "url": codes.public_url(cfg.server.public_base_url, c.code)},
                      ensure_ascii=False)


def cmd_code(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)

    async def main(conn: asyncpg.Connection) -> int:
        try:
            if args.code_action == "add":
                c = await codes.add_code(conn, args.id, args.store, code=args.code, amount=args.amount)
                print(_code_json(c, cfg))
            elif args.code_action in ("disable", "enable"):
                await codes.set_code_status(conn, args.code, "disabled" if args.code_action == "disable" else "active")
                print(json.dumps({"code": args.code, "status": args.code_action + "d"}))
            else:
                for c in await codes.list_codes(conn, args.id):
                    print(_code_json(c, cfg))
        except (LookupError, ValueError) as err:
            print(str(err), file=sys.stderr)
            return 1
        return 0

    return with_connection(cfg, main)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("merchant", help="manage merchants")
    msub = s.add_subparsers(dest="action", required=True)
    a = msub.add_parser("add")
    a.add_argument("id")
    a.add_argument("--name")
    a.add_argument("--secret", help="default: generated")
    a.add_argument("--max-amount", type=int, help="fen")
    a.add_argument("--rate-limit", type=float, help="requests per second")
    a.add_argument("--sub", action="append", metavar="CHANNEL=SUB_MCH_ID", help="sub-merchant id at a channel")
    a.add_argument("--late-payment", choices=merchants.LATE_PAYMENT_ACTIONS, default="refund",
                   help="money a provider reports after paycore ended the payment: refund it at once "
                        "(default) or hold it for an operator")
    msub.add_parser("list")
    a = msub.add_parser("set-late-payment", help="refund late money at once, or hold it for an operator")
    a.add_argument("id")
    a.add_argument("late_action", metavar="refund|hold", choices=merchants.LATE_PAYMENT_ACTIONS)
    r = msub.add_parser("rotate-secret", help="a new secret; the old one keeps working for --grace")
    r.add_argument("id")
    r.add_argument("--grace", default="0", metavar="DURATION",
                   help="how long the old secret stays valid: 24h, 90m, 2d, 30s (default 0: it stops at once)")
    for name in ("disable", "enable"):
        msub.add_parser(name).add_argument("id")
    q = msub.add_parser("qrcode", help="render the merchant's static one-code QR")
    q.add_argument("id")
    q.add_argument("--store", default=None)
    q.add_argument("--out", required=True, help="file.png, file.svg, or file.pdf (a print-ready A6 plate)")
    s.set_defaults(fn=cmd_merchant)

    p = msub.add_parser("code", help="one-code (一码通付) static codes")
    csub = p.add_subparsers(dest="code_action", required=True)
    a = csub.add_parser("add", help="create a code for a merchant (or one of its stores)")
    a.add_argument("id", help="merchant id")
    a.add_argument("--store", default=None)
    a.add_argument("--code", default=None, help="default: ID or ID.STORE")
    a.add_argument("--amount", type=int, default=None, help="fixed amount in fen (default: the customer types it)")
    for name in ("disable", "enable"):
        csub.add_parser(name).add_argument("code")
    csub.add_parser("list").add_argument("id", nargs="?", default=None)
    p.set_defaults(fn=cmd_code)
