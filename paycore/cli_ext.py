"""Further ``paycore`` sub-commands (audit, webhooks, reconcile, consume),
each implemented in its own module and registered here explicitly."""
from __future__ import annotations

import argparse
from datetime import date


def _lazy(module: str, fn: str):
    """The command's module is imported only when it runs: ``serve`` must set
    PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client."""
    def run(args: argparse.Namespace) -> int:
        import importlib
        return getattr(importlib.import_module(module), fn)(args)
    return run


def _ops(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("webhooks", help="merchant webhooks: list, replay")
    wsub = s.add_subparsers(dest="action", required=True)
    a = wsub.add_parser("list", help="recent webhooks, newest first")
    a.add_argument("--status", choices=("PENDING", "DELIVERED", "FAILED"))
    a.add_argument("--payment", help="payment id")
    a.add_argument("--merchant", help="merchant id")
    a.add_argument("--limit", type=int, default=50)
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a = wsub.add_parser("replay", help="deliver again with a fresh schedule")
    a.add_argument("ids", nargs="*", help="webhook ids (numbers) or event ids (evt_...)")
    a.add_argument("--failed", action="store_true", help="every FAILED webhook")
    s.set_defaults(fn=_lazy("paycore.webhooks", "cmd_webhooks"))

    s = sub.add_parser("reconcile", help="match a channel's daily statement against the journal")
    s.add_argument("--channel", required=True)
    s.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD (UTC day)")
    s.add_argument("--json", action="store_true", help="the report as JSON instead of a table")
    s.add_argument("--no-store", action="store_true", help="do not record the run in Postgres")
    s.set_defaults(fn=_lazy("paycore.reconcile", "cmd_reconcile"))

    s = sub.add_parser("consume", help="Kafka consumers of the journal")
    csub = s.add_subparsers(dest="consumer", required=True)
    a = csub.add_parser("settlement", help="per-merchant, per-channel daily totals in Postgres")
    a.add_argument("--group", default="paycore-settlement", help="consumer group id")
    a.add_argument("--batch", type=int, default=500, help="records per fetch")
    a.add_argument("--session-timeout-ms", type=int, default=10000)
    a.add_argument("--dedup-days", type=int, default=14, help="how long event ids are kept for dedup")
    a.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on this port (0: off)")
    a.add_argument("--metrics-host", default="0.0.0.0")
    s.set_defaults(fn=_lazy("paycore.consumer", "cmd_consume"))


def register(sub: argparse._SubParsersAction) -> None:
    _ops(sub)   # paycore webhooks list|replay, reconcile, consume settlement
    from paycore import audit
    audit.register(sub)   # paycore audit: Postgres events vs the Kafka topic
    from paycore import onecode
    onecode.register_cli(sub)   # paycore merchant code add|disable|enable|list
