"""The journal of money after the payment: splits and payouts commit their
state changes with their events like payments do (events, outbox, webhooks in
the same transaction), in one plain transaction per change.

Splits are rare next to payments, so they do not ride the group commit of
:mod:`paycore.core.journal`: a split's event counts on its payment's ``seq``,
taken under the payment row's lock (``select … for update``), so a journal
update computed from the older row is refused by its ``seq`` guard and
re-decided, exactly as two payment changes would be. A payout is its own
stream: ``events.payment_id`` (and the Kafka key) is the payout id and
``seq`` counts per payout.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from channels.base import ChannelAdapter
from paycore.core.journal import DB_DOWN, PAYMENT_SELECT
from paycore.core.models import Payment, dumps, new_id, now
from paycore.errors import Unavailable

#: final events of splits and payouts: each becomes a merchant webhook when a notify_url is known
FINAL_EVENT_TYPES = frozenset({"split.succeeded", "split.failed", "split.returned", "split.return_failed",
                               "payout.succeeded", "payout.failed", "payout.returned"})


async def write_event(conn: Any, *, stream_id: str, seq: int, etype: str, at: datetime, body: dict[str, Any],
                      merchant_id: str, notify_url: str | None) -> str:
    """Insert one event (+ outbox row, + webhook row for a final event with a URL); the caller's
    transaction commits it with the state change it announces."""
    eid = new_id("evt")
    payload = dumps({"event_id": eid, "type": etype, "seq": seq, "occurred_at": at, **body})
    await conn.execute(
        "insert into events (event_id, payment_id, seq, type, occurred_at, payload) "
        "values ($1, $2, $3, $4, $5, convert_from($6::bytea, 'UTF8')::jsonb)", eid, stream_id, seq, etype, at, payload)
    await conn.execute("insert into outbox (event_id, payment_id, payload, created_at) values ($1, $2, $3, $4)",
                       eid, stream_id, payload, at)
    if notify_url and etype in FINAL_EVENT_TYPES:
        await conn.execute("insert into webhooks (event_id, merchant_id, payment_id, url, payload) "
                           "values ($1, $2, $3, $4, $5)", eid, merchant_id, stream_id, notify_url, payload)
    return eid


async def lock_payment(conn: Any, payment_id: str) -> Payment | None:
    row = await conn.fetchrow(f"{PAYMENT_SELECT} where id = $1 for update", payment_id)
    return Payment.from_record(row) if row else None


async def bump_payment(conn: Any, p: Payment, at: datetime) -> Payment:
    """The payment's next ``seq`` for a split event (the row is locked by :func:`lock_payment`)."""
    p.seq += 1
    p.updated_at = at
    await conn.execute("update payments set seq = $2, updated_at = $3 where id = $1", p.id, p.seq, at)
    return p


def next_check(adapter: ChannelAdapter, checks: int) -> datetime:
    """First look after the synchronous call has surely ended; then the channel's interval, doubling."""
    base = adapter.settings.timeout + 2 if checks == 0 else adapter.settings.recovery.interval * 2 ** min(checks, 6)
    return now() + timedelta(seconds=min(base, 300.0))


async def db(coro):
    """A database call whose failure means "nothing was accepted" (503 UNAVAILABLE)."""
    try:
        return await coro
    except DB_DOWN as e:
        raise Unavailable("database unavailable") from e
