"""The needs-attention queue: every disagreement with a provider is a row.

Items are opened by the engine (late money, amounts that differ, outcomes
still unknown past their deadline, refunds that succeeded late into a
conflict, payments of a disabled channel) and by reconciliation; each
opening journals ``attention.opened`` on its payment. Operators list and
read them here (the console, ``paycore attention``, ``/ops/attention``) and
resolve them only through ``Engine.resolve_attention`` — which journals
``attention.resolved`` with who did what and why — never by editing rows.
"""
from __future__ import annotations

from typing import Any

from paycore.core import calls
from paycore.metrics import ATTENTION_KINDS

LATE_SUCCESS = "late_success"
AMOUNT_MISMATCH = "amount_mismatch"
OUTCOME_UNKNOWN = "outcome_unknown_past_deadline"
REFUND_CONFLICT = "refund_late_success_conflict"
RECON_DISCREPANCY = "reconciliation_discrepancy"
CHANNEL_DISABLED = "channel_disabled_open"

#: every reason an item is opened for (the gauge paycore_attention_open exports each)
KINDS = ATTENTION_KINDS
assert set(KINDS) == {LATE_SUCCESS, AMOUNT_MISMATCH, OUTCOME_UNKNOWN, REFUND_CONFLICT, RECON_DISCREPANCY,
                      CHANNEL_DISABLED}

STATUSES = ("OPEN", "RESOLVED")

#: what an operator may do with an item of each kind (Engine.resolve_attention):
#: ``refund``       refund late money that was held (a refund through the engine);
#: ``requery``      ask the channel now and apply its answer (resolves only on a final answer);
#: ``refund_failed`` / ``refund_succeeded``  the provider confirmed (out of band) what became
#:                  of a refund whose outcome stayed unknown: applied like the provider's answer;
#: ``close``        end a payment of a disabled channel that the operator confirmed unpaid;
#: ``acknowledge``  the operator checked and nothing is to change (the reason says why).
ACTIONS: dict[str, tuple[str, ...]] = {
    LATE_SUCCESS: ("refund", "acknowledge"),
    AMOUNT_MISMATCH: ("requery", "acknowledge"),
    OUTCOME_UNKNOWN: ("requery", "refund_failed", "refund_succeeded", "acknowledge"),
    REFUND_CONFLICT: ("acknowledge",),
    RECON_DISCREPANCY: ("requery", "acknowledge"),
    CHANNEL_DISABLED: ("close", "acknowledge"),
}

COLUMNS = ("id", "kind", "payment_id", "refund_id", "merchant_id", "channel", "status", "evidence", "created_at",
           "resolved_at", "resolved_by", "resolution", "reason")
_SELECT = f"select {', '.join(COLUMNS)} from attention_items"


def _row(r: Any) -> dict[str, Any]:
    return {c: r[c] for c in COLUMNS}


async def list_items(conn: Any, *, status: str | None = None, merchant_id: str | None = None,
                     kind: str | None = None, limit: int = 50, before_id: int | None = None) -> list[dict]:
    """Items newest first; page on with ``before_id`` = the last id seen."""
    where, args = [], []
    for col, val in (("status", status), ("merchant_id", merchant_id), ("kind", kind)):
        if val is not None:
            args.append(val)
            where.append(f"{col} = ${len(args)}")
    if before_id is not None:
        args.append(int(before_id))
        where.append(f"id < ${len(args)}")
    args.append(max(1, min(int(limit), 500)))
    sql = f"{_SELECT} {'where ' + ' and '.join(where) if where else ''} order by id desc limit ${len(args)}"
    return [_row(r) for r in await conn.fetch(sql, *args)]


async def get_item(conn: Any, item_id: int) -> dict | None:
    r = await conn.fetchrow(f"{_SELECT} where id = $1", int(item_id))
    return _row(r) if r else None


async def record_only(conn: Any, kind: str, payment_id: str, refund_id: str | None, merchant_id: str, channel: str,
                      evidence: str) -> None:
    """An item recorded without touching its payment (no event): for findings the contract says
    must change nothing, such as a refused notification. Once per open (payment, refund, kind)."""
    await conn.execute(
        "insert into attention_items (kind, payment_id, refund_id, merchant_id, channel, evidence) "
        "values ($1, $2, $3, $4, $5, $6::text::jsonb) on conflict do nothing",
        kind, payment_id, refund_id, merchant_id, channel, evidence)


async def record_unlinked(conn: Any, kind: str, channel: str, evidence: str) -> int:
    """An item that names no payment of ours (money a statement shows for an order paycore
    never made): only ``acknowledge`` resolves it. The merchant is unknown: ``merchant_id`` ''."""
    return await conn.fetchval(
        "insert into attention_items (kind, payment_id, refund_id, merchant_id, channel, evidence) "
        "values ($1, null, null, '', $2, $3::text::jsonb) returning id", kind, channel, evidence)


async def acknowledge_unlinked(conn: Any, item_id: int, actor: str, reason: str) -> bool:
    """Resolve an item naming no payment (there is no journal to write it in): False if not OPEN."""
    return bool(await conn.fetchval(
        "update attention_items set status = 'RESOLVED', resolved_at = now(), resolved_by = $2, "
        "resolution = 'acknowledge', reason = $3 where id = $1 and status = 'OPEN' and payment_id is null "
        "returning id", int(item_id), actor, reason))


async def open_counts(conn: Any) -> dict[str, int]:
    """Open items by kind (every kind, 0 when none): the gauge's values."""
    counts = dict.fromkeys(KINDS, 0)
    for r in await conn.fetch("select kind, count(*) as n from attention_items where status = 'OPEN' group by kind"):
        counts[r["kind"]] = r["n"]
    return counts


async def payment_detail(conn: Any, payment_id: str) -> dict | None:
    """Everything an operator needs about one payment: the row, its refunds, its
    events in ``seq`` order (each state change and what the channel said), its
    attention items, merchant webhooks and each provider call (flow, outcome,
    answer, code, HTTP status, latency; never the bodies)."""
    row = await conn.fetchrow("select * from payments where id = $1", payment_id)
    if row is None:
        return None
    refunds = await conn.fetch("select * from refunds where payment_id = $1 order by created_at", payment_id)
    events = await conn.fetch("select seq, type, occurred_at, event_id, payload->'attention' as attention "
                              "from events where payment_id = $1 order by seq", payment_id)
    items = await conn.fetch(f"{_SELECT} where payment_id = $1 order by id", payment_id)
    hooks = await conn.fetch("select id, event_id, status, attempts, last_status, last_error, delivered_at "
                             "from webhooks where payment_id = $1 order by id", payment_id)
    return {"payment": dict(row), "refunds": [dict(r) for r in refunds], "events": [dict(e) for e in events],
            "attention": [_row(r) for r in items], "webhooks": [dict(h) for h in hooks],
            "channel_calls": await calls.for_payment(conn, payment_id)}
