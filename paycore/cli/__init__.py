"""``paycore`` command line. Each command lives in a module of this package;
the domain modules it calls expose functions, never argparse.

The development stack (``make run``) and the simulators are not part of the
production CLI: they are ``python -m devstack`` in a source checkout.
"""
from __future__ import annotations

import argparse
import sys

from paycore.cli import attention, merchant, moneyafter, ops, serve, settlement, user


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="paycore", description="paycore payment platform")
    ap.add_argument("--config", default=None, help="TOML config (default: $PAYCORE_CONFIG)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    serve.register(sub)      # serve, relay, migrate
    merchant.register(sub)   # merchant add|list|rotate-secret|disable|enable|qrcode|code
    ops.register(sub)        # channels, webhooks, reconcile, consume settlement, audit, maintain
    attention.register(sub)  # attention list|show|resolve, payment show|requery
    settlement.register(sub)  # fee add|list, settlement close|export|show|check|webhook
    user.register(sub)       # user add|list|disable|enable|reset-password|reset-totp (console and portal)
    moneyafter.register(sub)  # split show|list, payout show|list|requery
    args = ap.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
