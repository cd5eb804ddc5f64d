"""``paycore user add|list|disable|enable|reset-password|reset-totp``: console and portal users.

A password comes from ``--password-file`` or the ``PAYCORE_USER_PASSWORD``
variable (never the command line, where ``ps`` shows it) or is generated
and printed once. An operator's TOTP key is printed once as an otpauth://
URI for the authenticator app. Each change is written to the console's
audit log as ``cli:<os user>``.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
from pathlib import Path

import asyncpg

from paycore.cli.common import load, with_connection
from paycore.merchants import auditlog, users
from paycore.merchants.auth import SecretBox


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated)."""
    if getattr(args, "password_file", None):
        return Path(args.password_file).read_text().strip(), False
    if os.environ.get("PAYCORE_USER_PASSWORD"):
        return os.environ["PAYCORE_USER_PASSWORD"], False
    return secrets.token_urlsafe(15), True


def _actor() -> auditlog.Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    return auditlog.Actor(f"cli:{who}", "cli")


def cmd_user(args: argparse.Namespace) -> int:
    cfg = load(args, logging=False)

    async def main(conn: asyncpg.Connection) -> int:
        box = SecretBox(cfg.security.master_key)
        try:
            if args.action == "list":
                for u in await users.list_users(conn):
                    print(json.dumps(u, default=str, ensure_ascii=False))
                return 0
            before = await users.get_user(conn, args.username) if args.action != "add" else None
            out: dict = {"username": args.username}
            if args.action == "add":
                password, generated = _password(args)
                user, uri = await users.add_user(conn, box, args.username, args.role, password,
                                                 merchant_id=args.merchant)
                out.update(user.public())
                if generated:
                    out["password"] = password
                if uri:
                    out["totp_uri"] = uri
            elif args.action in ("disable", "enable"):
                user = await users.set_status(conn, args.username, "disabled" if args.action == "disable" else "active")
                out.update(user.public())
            elif args.action == "reset-password":
                password, generated = _password(args)
                user = await users.reset_password(conn, args.username, password)
                if generated:
                    out["password"] = password
            else:
                user, uri = await users.reset_totp(conn, box, args.username)
                out["totp_uri"] = uri
            await auditlog.record(conn, _actor(), f"user.{args.action}" if args.action != "add" else "user.create",
                                  target=args.username, merchant_id=user.merchant_id,
                                  before=before.public() if before else None, after=user.public())
        except (LookupError, ValueError) as e:
            print(str(e), file=sys.stderr)
            return 1
        print(json.dumps(out, ensure_ascii=False))
        return 0

    return with_connection(cfg, main)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("user", help="console and portal users")
    usub = s.add_subparsers(dest="action", required=True)
    a = usub.add_parser("add", help="an operator (admin, support, finance) or a merchant user")
    a.add_argument("username")
    a.add_argument("--role", required=True, choices=users.ROLES)
    a.add_argument("--merchant", default=None, help="the merchant of a merchant user")
    a.add_argument("--password-file", default=None, help="default: $PAYCORE_USER_PASSWORD, else generated")
    usub.add_parser("list")
    for name in ("disable", "enable", "reset-totp"):
        usub.add_parser(name).add_argument("username")
    r = usub.add_parser("reset-password")
    r.add_argument("username")
    r.add_argument("--password-file", default=None)
    s.set_defaults(fn=cmd_user)
