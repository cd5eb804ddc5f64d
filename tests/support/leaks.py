"""What must never show in a log line or a response body: the secrets the
suite's stacks were given, registered as they are made (the same process
runs every stack, so a module-level registry sees them all)."""
from __future__ import annotations

SECRETS: dict[str, str] = {}


def remember(label: str, value: str) -> None:
    if value:
        SECRETS[label] = value
