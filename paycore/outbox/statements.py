"""Settlement days and statements: what each merchant is owed per business day.

The lines are written by the settlement consumer (paycore.outbox.settlement).
Here they are summed (the API's Settlement object), paged (the lines API),
rendered as the statement file (CSV, UTF-8 with a byte order mark so that
spreadsheet programs read the Chinese text right, CRLF, one row per line and
a totals row), closed (``paycore settlement close``) and checked against the
journal.

Totals of a merchant's day, all in fen (docs/settlement.md):

    gross       = Σ amount of payment lines
    refunds     = −Σ amount of refund lines (refunds and reversals; a positive number)
    fees        = Σ fee of payment and refund lines (refund lines give fees back: negative)
    shares      = −Σ amount of split lines (shares made minus shares returned; positive when money left)
    payouts     = −Σ amount of payout lines (paid out minus returned; positive when money left)
    adjustments = Σ net of adjustment lines (late events of closed days, signed)
    net         = gross − refunds − fees − shares − payouts + adjustments = Σ net of every line

Closing a day stores each merchant's summary and file (never rewritten: the
table refuses updates) and writes a ``settlement.closed`` event (journal,
outbox → Kafka, and a webhook to the merchant's ``webhook_url``) in the same
transaction. A day is closed for every merchant at once.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from paycore.bizday import Calendar
from paycore.core.models import dumps, new_id
from paycore.outbox.settlement import CLOSE_LOCK

CSV_COLUMNS = ("kind", "id", "payment_id", "merchant_order_no", "channel", "method", "amount", "fee", "net",
               "occurred_at", "original_date")
BOM = "\ufeff".encode()
PAGE = 200
_LINE_COLS = ("event_id, kind, id, payment_id, merchant_order_no, channel, method, amount, fee, net, occurred_at, "
              "original_date")


def rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def settlement_key(merchant_id: str, day: date) -> str:
    """The settlement.closed event's key (Kafka key, ``events.payment_id``): one per merchant and day."""
    return f"stl_{merchant_id}_{day:%Y%m%d}"


# ------------------------------------------------------------------- totals
@dataclass(slots=True)
class Sums:
    count: int = 0
    gross: int = 0
    refunds: int = 0
    fees: int = 0
    shares: int = 0
    payouts: int = 0
    adjustments: int = 0
    net: int = 0

    def add(self, kind: str, n: int, amount: int, fee: int, net: int) -> None:
        self.count += n
        self.net += net
        if kind == "payment":
            self.gross += amount
            self.fees += fee
        elif kind == "refund":
            self.refunds -= amount
            self.fees += fee
        elif kind == "split":
            self.shares -= amount
        elif kind == "payout":
            self.payouts -= amount
        else:
            self.adjustments += net


@dataclass(slots=True)
class Totals:
    total: Sums = field(default_factory=Sums)
    channels: dict[str, Sums] = field(default_factory=dict)

    def add(self, channel: str, kind: str, n: int, amount: int, fee: int, net: int) -> None:
        self.total.add(kind, n, amount, fee, net)
        self.channels.setdefault(channel, Sums()).add(kind, n, amount, fee, net)

    def summary(self, merchant_id: str, day: date, status: str, sha256: str | None) -> dict[str, Any]:
        t = self.total
        return {"merchant_id": merchant_id, "date": day.isoformat(), "status": status, "count": t.count,
                "gross": t.gross, "refunds": t.refunds, "fees": t.fees, "shares": t.shares, "payouts": t.payouts,
                "adjustments": t.adjustments, "net": t.net,
                "by_channel": [{"channel": ch, "count": s.count, "gross": s.gross, "refunds": s.refunds,
                                "fees": s.fees, "shares": s.shares, "payouts": s.payouts, "net": s.net}
                               for ch, s in sorted(self.channels.items())],
                "file_sha256": sha256}


def _with_after(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary stored before shares and payouts were counted had none: zero, not missing."""
    out = {"shares": 0, "payouts": 0, **summary}
    out["by_channel"] = [{"shares": 0, "payouts": 0, **c} for c in summary.get("by_channel", [])]
    return out


def totals_of(lines: list[Any]) -> Totals:
    t = Totals()
    for ln in lines:
        t.add(ln["channel"], ln["kind"], 1, ln["amount"], ln["fee"], ln["net"])
    return t


# ------------------------------------------------------------------- the file
def render_csv(lines: list[Any]) -> bytes:
    """The statement file of one merchant's day: a header row, one row per line, a totals row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    t = Sums()
    for ln in lines:
        w.writerow((ln["kind"], ln["id"], ln["payment_id"], ln["merchant_order_no"], ln["channel"], ln["method"],
                    ln["amount"], ln["fee"], ln["net"], rfc3339(ln["occurred_at"]),
                    ln["original_date"].isoformat() if ln["original_date"] else ""))
        t.count += 1
        t.gross += ln["amount"]
        t.fees += ln["fee"]
        t.net += ln["net"]
    # the totals row: the number of lines in "id", the sums of the money columns
    w.writerow(("total", t.count, "", "", "", "", t.gross, t.fees, t.net, "", ""))
    return BOM + buf.getvalue().encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------- reading
async def is_closed(conn: Any, day: date) -> bool:
    return bool(await conn.fetchval("select exists (select 1 from settlement_closes where day = $1)", day))


async def day_lines(conn: Any, merchant_id: str, day: date) -> list[Any]:
    return await conn.fetch(f"select {_LINE_COLS} from settlement_lines where merchant_id = $1 and day = $2 "
                            "order by occurred_at, event_id", merchant_id, day)


async def _stored(conn: Any, merchant_id: str, day: date) -> Any:
    return await conn.fetchrow("select summary, file, file_sha256 from settlement_statements "
                               "where merchant_id = $1 and day = $2", merchant_id, day)


async def settlement(conn: Any, merchant_id: str, day: date) -> dict[str, Any]:
    """The API's Settlement object. A closed day answers what was stored when it closed; an open day
    its running totals, without a digest (its file is not final)."""
    stored = await _stored(conn, merchant_id, day)
    if stored is not None:
        return _with_after(stored["summary"])
    closed = await is_closed(conn, day)
    rows = await conn.fetch("select channel, kind, count(*) as n, sum(amount)::bigint as amount, "
                            "sum(fee)::bigint as fee, sum(net)::bigint as net from settlement_lines where merchant_id = $1 and day = $2 "
                            "group by channel, kind", merchant_id, day)
    t = Totals()
    for r in rows:
        t.add(r["channel"], r["kind"], r["n"], r["amount"], r["fee"], r["net"])
    # a closed day without a stored statement had no lines for this merchant: its (empty) file is final
    return t.summary(merchant_id, day, "CLOSED" if closed else "OPEN",
                     sha256_hex(render_csv([])) if closed else None)


async def statement_file(conn: Any, merchant_id: str, day: date) -> tuple[bytes, bool]:
    """(the CSV file, whether it is final)."""
    stored = await _stored(conn, merchant_id, day)
    if stored is not None:
        return bytes(stored["file"]), True
    closed = await is_closed(conn, day)
    return render_csv(await day_lines(conn, merchant_id, day)), closed


def encode_cursor(at: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{rfc3339(at)}|{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything that is not a cursor this module made."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    at, _, event_id = raw.partition("|")
    when = datetime.fromisoformat(at)
    if when.tzinfo is None or not event_id.startswith("evt_"):
        raise ValueError("not a cursor")
    return when, event_id


async def lines_page(conn: Any, merchant_id: str, day: date, cursor: tuple[datetime, str] | None,
                     limit: int = PAGE) -> dict[str, Any]:
    after_at, after_id = cursor if cursor else (None, None)
    rows = await conn.fetch(
        f"select {_LINE_COLS} from settlement_lines where merchant_id = $1 and day = $2 "
        "and ($3::timestamptz is null or (occurred_at, event_id) > ($3, $4)) "
        "order by occurred_at, event_id limit $5", merchant_id, day, after_at, after_id, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    lines = []
    for r in rows:
        ln: dict[str, Any] = {"kind": r["kind"], "id": r["id"], "channel": r["channel"], "amount": r["amount"],
                              "fee": r["fee"], "net": r["net"], "occurred_at": r["occurred_at"]}
        if r["original_date"] is not None:
            ln["original_date"] = r["original_date"].isoformat()
        lines.append(ln)
    nxt = encode_cursor(rows[-1]["occurred_at"], rows[-1]["event_id"]) if more else None
    return {"lines": lines, "next_cursor": nxt}


# ------------------------------------------------------------------- closing
class TooEarly(Exception):
    pass


@dataclass(slots=True)
class Closed:
    day: date
    already: bool = False
    statements: list[dict[str, Any]] = field(default_factory=list)
    webhooks: int = 0


async def close(conn: Any, day: date, cal: Calendar, *, early: bool = False,
                now: datetime | None = None) -> Closed:
    """Close ``day`` for every merchant: store each statement, announce it. Idempotent.

    Refused before the cut-off (``cal.closes_at``) unless ``early``; a day that
    has not begun is always refused. Lines of the day that arrive later become
    adjustments of the next open day."""
    now = now or datetime.now(timezone.utc)
    if day > cal.today(now):
        raise TooEarly(f"{day} has not begun yet")
    if not early and now < cal.closes_at(day):
        raise TooEarly(f"{day} may be closed from {rfc3339(cal.closes_at(day))} (its cut-off)")
    out = Closed(day)
    async with conn.transaction():
        # waits for the consumer's batches in flight, keeps new ones out until this commits
        await conn.execute("select pg_advisory_xact_lock($1)", CLOSE_LOCK)
        if await conn.fetchval("insert into settlement_closes (day, closed_at) values ($1, $2) "
                               "on conflict do nothing returning day", day, now) is None:
            out.already = True
            return out
        merchants = await conn.fetch("select m.id, m.webhook_url from merchants m where exists "
                                     "(select 1 from settlement_lines l where l.merchant_id = m.id and l.day = $1) "
                                     "order by m.id", day)
        for m in merchants:
            lines = await day_lines(conn, m["id"], day)
            data = render_csv(lines)
            digest = sha256_hex(data)
            summary = totals_of(lines).summary(m["id"], day, "CLOSED", digest)
            await conn.execute("insert into settlement_statements (merchant_id, day, closed_at, summary, file, "
                               "file_sha256) values ($1, $2, $3, $4, $5, $6)", m["id"], day, now, summary, data,
                               digest)
            out.webhooks += await _announce(conn, m["id"], m["webhook_url"], day, summary, now)
            out.statements.append(summary)
    return out


async def _announce(conn: Any, merchant_id: str, url: str | None, day: date, summary: dict[str, Any],
                    at: datetime) -> int:
    """The settlement.closed event: journal, outbox (→ Kafka) and the merchant's webhook, in the caller's
    transaction. Returns 1 if a webhook was queued."""
    eid, key = new_id("evt"), settlement_key(merchant_id, day)
    body = dumps({"event_id": eid, "type": "settlement.closed", "seq": 1, "occurred_at": at,
                  "settlement": summary})
    await conn.execute("insert into events (event_id, payment_id, seq, type, occurred_at, payload) "
                       "values ($1, $2, 1, 'settlement.closed', $3, $4)", eid, key, at, body)
    await conn.execute("insert into outbox (event_id, payment_id, payload, created_at) values ($1, $2, $3, $4)",
                       eid, key, body, at)
    if not url:
        return 0
    await conn.execute("insert into webhooks (event_id, merchant_id, payment_id, url, payload) "
                       "values ($1, $2, $3, $4, $5)", eid, merchant_id, key, url, body)
    return 1


async def due_days(conn: Any, cal: Calendar, now: datetime | None = None) -> list[date]:
    """Days with lines, past their cut-off and not closed yet, oldest first."""
    now = now or datetime.now(timezone.utc)
    rows = await conn.fetch("select distinct day from settlement_lines l where not exists "
                            "(select 1 from settlement_closes c where c.day = l.day) order by day")
    return [r["day"] for r in rows if cal.closes_at(r["day"]) <= now]


# ------------------------------------------------------------------- checking
_PAID = ("payment.succeeded", "payment.late_succeeded")

# The journal's side, computed from the events table with none of the consumer's code: what moved on
# business day [$1, $2), per merchant and channel. A reversal counts only if the payment had been paid.
_JOURNAL = """
select payload->'payment'->>'merchant_id' as merchant_id, payload->'payment'->>'channel' as channel,
       count(*) filter (where type = any($3)) as payments,
       coalesce(sum((payload->'payment'->>'amount')::bigint) filter (where type = any($3)), 0)::bigint as gross,
       coalesce(sum(coalesce((payload->'payment'->>'fee')::bigint, 0)) filter (where type = any($3)), 0)::bigint
           as payment_fees,
       coalesce(sum(case when type = 'refund.succeeded' then (payload->'refund'->>'amount')::bigint
                         else (payload->'payment'->>'amount')::bigint end)
                filter (where type = 'refund.succeeded' or (type = 'payment.reversed'
                        and payload->'payment'->>'paid_at' is not null)), 0)::bigint as refunds
from events where occurred_at >= $1 and occurred_at < $2
  and (type = any($3) or type = 'refund.succeeded'
       or (type = 'payment.reversed' and payload->'payment'->>'paid_at' is not null))
group by 1, 2"""

# The statements' side: every line whose event belongs to the day, on the day's statement or, as an
# adjustment, on a later one.
_LINES = """
select merchant_id, channel,
       count(*) filter (where type = any($2)) as payments,
       coalesce(sum(amount) filter (where type = any($2)), 0)::bigint as gross,
       coalesce(sum(fee) filter (where type = any($2)), 0)::bigint as payment_fees,
       coalesce(-sum(amount) filter (where type in ('refund.succeeded', 'payment.reversed')), 0)::bigint as refunds
from settlement_lines where coalesce(original_date, day) = $1
  and (type = any($2) or type in ('refund.succeeded', 'payment.reversed'))
group by 1, 2"""

# Money after the payment, the journal's side: shares made (the receivers the channel paid) less shares
# returned, and payouts paid less payouts returned after a success (a payout's stream: created is seq 1,
# so a RETURNED after a SUCCEEDED is seq 3; one returned straight from PROCESSING moved nothing).
_JOURNAL_AFTER = """
select merchant_id, channel, coalesce(sum(shares), 0)::bigint as shares, coalesce(sum(payouts), 0)::bigint as payouts
from (
  select payload->'payment'->>'merchant_id' as merchant_id, payload->'payment'->>'channel' as channel,
         case when type = 'split.succeeded'
              then (select coalesce(sum((r->>'amount')::bigint), 0) from jsonb_array_elements(payload->'split'->'receivers') r
                    where r->>'status' = 'SUCCEEDED')
              else -(payload->'split_return'->>'amount')::bigint end as shares,
         0::bigint as payouts
  from events where occurred_at >= $1 and occurred_at < $2 and type in ('split.succeeded', 'split.returned')
  union all
  select payload->'payout'->>'merchant_id', payload->'payout'->>'channel', 0::bigint,
         case when type = 'payout.succeeded' then (payload->'payout'->>'amount')::bigint
              else -(payload->'payout'->>'amount')::bigint end
  from events where occurred_at >= $1 and occurred_at < $2
    and (type = 'payout.succeeded' or (type = 'payout.returned' and seq > 2))
) moved group by 1, 2"""

_LINES_AFTER = """
select merchant_id, channel,
       coalesce(-sum(amount) filter (where type in ('split.succeeded', 'split.returned')), 0)::bigint as shares,
       coalesce(-sum(amount) filter (where type in ('payout.succeeded', 'payout.returned')), 0)::bigint as payouts
from settlement_lines where coalesce(original_date, day) = $1
  and type in ('split.succeeded', 'split.returned', 'payout.succeeded', 'payout.returned')
group by 1, 2"""

CHECK_FIELDS = ("payments", "gross", "payment_fees", "refunds", "shares", "payouts")


def _by_channel(money: list[Any], after: list[Any]) -> dict[tuple[str, str], tuple[int, ...]]:
    """(merchant, channel) → CHECK_FIELDS, zero where one of the two queries has no row; a pair where
    nothing moved (a split whose receivers were all refused) is left out, as it has no line either."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for r in money:
        out.setdefault((r["merchant_id"], r["channel"]), {}).update(
            {f: r[f] for f in ("payments", "gross", "payment_fees", "refunds")})
    for r in after:
        out.setdefault((r["merchant_id"], r["channel"]), {}).update(shares=r["shares"], payouts=r["payouts"])
    totals = {k: tuple(v.get(f, 0) for f in CHECK_FIELDS) for k, v in out.items()}
    return {k: t for k, t in totals.items() if any(t)}


async def check(conn: Any, day: date, cal: Calendar) -> dict[tuple[str, str], tuple[Any, Any]]:
    """(merchant, channel) → (journal, statements), each CHECK_FIELDS, wherever the two differ; empty
    when they agree: payments, gross, fees and refunds, and the shares and payouts that left."""
    start, end = cal.bounds(day)
    journal = _by_channel(await conn.fetch(_JOURNAL, start, end, list(_PAID)),
                          await conn.fetch(_JOURNAL_AFTER, start, end))
    lines = _by_channel(await conn.fetch(_LINES, day, list(_PAID)), await conn.fetch(_LINES_AFTER, day))
    return {k: (journal.get(k), lines.get(k)) for k in journal.keys() | lines.keys() if journal.get(k) != lines.get(k)}
