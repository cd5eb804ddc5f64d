"""Finding payments: the console's and the portal's search, its CSV export and
a payment's history.

Results are newest first and paged by keyset on ``(created_at, id)``: a page
is "the next N after this cursor", so page 1,000 costs what page 1 costs and
rows arriving meanwhile do not shift the pages. Each common filter has an
index path (migrations/001 and 007): id (primary key), merchant order no,
channel trade no (one probe per channel into ``(channel, channel_trade_no)``),
merchant + time (``(merchant_id, created_at, id)``), status + time
(``(status, created_at, id)``), time alone (``created_at``). Channel and
method narrow one of those. ``loadtest/search_bench.py`` measures them at
10 million rows (docs/performance.md).

Times are UTC.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, AsyncIterator, Mapping

from channels.base import Method
from channels.registry import ADAPTERS
from paycore.core.models import Status
from paycore.errors import InvalidRequest

LIST_COLUMNS = ("id", "merchant_id", "merchant_order_no", "amount", "currency", "method", "channel", "status",
                "channel_trade_no", "refunded_amount", "created_at", "paid_at")
_TEXT_RE = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,128}$")
MAX_PAGE = 200
EXPORT_MAX = 100_000


@dataclass(slots=True)
class PaymentFilter:
    id: str | None = None
    merchant_order_no: str | None = None
    channel_trade_no: str | None = None
    merchant_id: str | None = None
    channel: str | None = None
    method: str | None = None
    status: str | None = None
    since: datetime | None = None     # created_at >= since
    until: datetime | None = None     # created_at < until

    def query(self) -> dict[str, str]:
        """The filter as query parameters (for links to the next page and the export)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v.strftime("%Y-%m-%dT%H:%M") if isinstance(v, datetime) else v
        return out


def _when(raw: str, name: str, *, end: bool) -> datetime:
    """``2026-12-01`` (a whole day: its start, or for ``until`` the next day's start) or
    ``2026-12-01T10:30`` (a minute), UTC."""
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime.combine(d + timedelta(days=1 if end else 0), time(0), tzinfo=timezone.utc)
        return datetime.fromisoformat(raw).replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)", field=name) from None


def parse_filter(q: Mapping[str, str]) -> PaymentFilter:
    """A filter from query parameters; empty ones are ignored, bad ones are an InvalidRequest naming the field."""
    f = PaymentFilter()
    for name in ("id", "merchant_order_no", "channel_trade_no", "merchant_id"):
        v = (q.get(name) or "").strip()
        if v:
            if not _TEXT_RE.match(v):
                raise InvalidRequest(f"{name} has characters no {name} has", field=name)
            setattr(f, name, v)
    for name, allowed in (("channel", set(ADAPTERS)), ("method", {str(m) for m in Method}),
                          ("status", {str(s) for s in Status})):
        v = (q.get(name) or "").strip()
        if v:
            if v not in allowed:
                raise InvalidRequest(f"unknown {name} {v[:40]!r}", field=name)
            setattr(f, name, v)
    if (q.get("since") or "").strip():
        f.since = _when(q["since"].strip(), "since", end=False)
    if (q.get("until") or "").strip():
        f.until = _when(q["until"].strip(), "until", end=True)
    return f


def encode_cursor(row: Mapping[str, Any]) -> str:
    ts: datetime = row["created_at"]
    return f"{int(ts.timestamp() * 1_000_000)}.{row['id']}"


def decode_cursor(raw: str | None) -> tuple[datetime, str] | None:
    if not raw:
        return None
    us, _, pid = raw.partition(".")
    if not us.isdigit() or not _TEXT_RE.match(pid or ""):
        raise InvalidRequest("bad cursor", field="after")
    return datetime.fromtimestamp(int(us) / 1_000_000, timezone.utc), pid


def _where(f: PaymentFilter, scope: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.replace("?", f"${len(args)}"))

    if scope is not None:   # a merchant user: its own payments, whatever the filter says
        add("merchant_id = ?", scope)
    if f.id:
        add("id = ?", f.id)
    if f.merchant_order_no:
        add("merchant_order_no = ?", f.merchant_order_no)
    if f.channel_trade_no:
        chans = [f.channel] if f.channel else sorted(ADAPTERS)
        # (channel, channel_trade_no) = any(...): one index probe per channel
        args.append(chans)
        args.append(f.channel_trade_no)
        where.append(f"channel = any(${len(args) - 1}::text[]) and channel_trade_no = ${len(args)}")
    if f.merchant_id and f.merchant_id != scope:
        add("merchant_id = ?", f.merchant_id)
    if f.channel:
        add("channel = ?", f.channel)
    if f.method:
        add("method = ?", f.method)
    if f.status:
        add("status = ?", f.status)
    if f.since:
        add("created_at >= ?", f.since)
    if f.until:
        add("created_at < ?", f.until)
    return where, args


def search_sql(f: PaymentFilter, scope: str | None, after: tuple[datetime, str] | None,
               limit: int) -> tuple[str, list[Any]]:
    where, args = _where(f, scope)
    if after is not None:
        args += [after[0], after[1]]
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = (f"select {', '.join(LIST_COLUMNS)} from payments {'where ' + ' and '.join(where) if where else ''} "
           f"order by created_at desc, id desc limit ${len(args)}")
    return sql, args


async def search(conn: Any, f: PaymentFilter, *, scope: str | None = None, after: str | None = None,
                 limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """One page of payments matching ``f`` (only merchant ``scope``'s when given) and the cursor of the next."""
    limit = max(1, min(limit, MAX_PAGE))
    sql, args = search_sql(f, scope, decode_cursor(after), limit + 1)
    rows = [dict(r) for r in await conn.fetch(sql, *args)]
    nxt = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], nxt


async def export(conn: Any, f: PaymentFilter, *, scope: str | None = None,
                 max_rows: int = EXPORT_MAX) -> AsyncIterator[dict[str, Any]]:
    """Every matching payment (at most ``max_rows``), page after page on the keyset."""
    after: str | None = None
    sent = 0
    while sent < max_rows:
        rows, after = await search(conn, f, scope=scope, after=after, limit=min(MAX_PAGE, max_rows - sent))
        for r in rows:
            yield r
        sent += len(rows)
        if after is None:
            return


async def history(conn: Any, payment_id: str) -> dict[str, list[dict[str, Any]]]:
    """A payment's events (in seq order) and refunds (newest first)."""
    events = await conn.fetch("select event_id, seq, type, occurred_at, payload from events where payment_id = $1 "
                              "order by seq", payment_id)
    refunds = await conn.fetch("select id, refund_no, amount, status, reason, channel_refund_no, failure, created_at, "
                               "updated_at from refunds where payment_id = $1 order by created_at desc", payment_id)
    return {"events": [dict(e) for e in events], "refunds": [dict(r) for r in refunds]}


async def day_statement(conn: Any, merchant_id: str, day: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A merchant's money of one UTC day: payments paid that day (SUCCEEDED or REVERSED after payment) and
    refunds that succeeded that day — the same day boundaries reconciliation uses."""
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    pays = await conn.fetch("select id, merchant_order_no, channel, method, amount, refunded_amount, status, "
                            "channel_trade_no, paid_at from payments where merchant_id = $1 and paid_at >= $2 "
                            "and paid_at < $3 and status in ('SUCCEEDED', 'REVERSED') and created_at >= $4 "
                            "order by paid_at", merchant_id, start, end, start - timedelta(days=8))
    refs = await conn.fetch("select r.id, r.payment_id, r.refund_no, r.amount, r.channel_refund_no, r.updated_at "
                            "from refunds r where r.merchant_id = $1 and r.status = 'SUCCEEDED' and r.updated_at >= $2 "
                            "and r.updated_at < $3 order by r.updated_at", merchant_id, start, end)
    return [dict(p) for p in pays], [dict(r) for r in refs]
