"""Helpers shared by the ``qqwallet``, ``bankwallet`` and ``ecny`` adapters:
the replay-window check of a signed message's timestamp and decoding a
verified JSON notification. (Their simulators' shared order operations are in
``simulators.walletkit``.)
"""
from __future__ import annotations

from typing import Any, Callable

import orjson

from channels.base import ChannelError, Notification, NotificationRejected


def fresh(timestamp: str | None, now: float, window: float) -> bool:
    """The timestamp is a decimal unix time within ``window`` seconds of ``now``."""
    if not timestamp or not timestamp.isdigit():
        return False
    return abs(now - int(timestamp)) <= window


def decode_notification(kind: str, body: bytes, parse: Callable[[Any], Notification]) -> Notification:
    """A JSON notification body whose signature is already verified →
    ``parse(json)``; anything unreadable, or posted to the other kind's
    URL, is NotificationRejected("malformed")."""
    try:
        note = parse(orjson.loads(body))
    except (ValueError, ChannelError) as e:       # orjson.JSONDecodeError is a ValueError
        raise NotificationRejected("malformed", str(e)) from e
    if note.kind != kind:
        raise NotificationRejected("malformed", f"{note.kind} notification posted as {kind}")
    return note
