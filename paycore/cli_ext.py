"""Further ``paycore`` sub-commands (audit, webhooks, reconcile, consume),
each implemented in its own module and registered here explicitly."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from paycore import audit
    audit.register(sub)   # paycore audit: Postgres events vs the Kafka topic
    from paycore import onecode
    onecode.register_cli(sub)   # paycore merchant code add|disable|enable|list
