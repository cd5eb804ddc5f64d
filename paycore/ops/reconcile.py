"""Reconciliation: a channel's daily statement against our journal.

``paycore reconcile --channel X --date D`` fetches the statement through the
channel adapter (each provider's own file format, parsed by its
transformers into :class:`StatementLine`) and matches it line by line with
the payments and refunds in Postgres:

* ``matched``          – same id, same amount, compatible status;
* ``missing_ours``     – the channel took (or returned) money we have no record of;
* ``missing_channel``  – we think money moved on D, the channel's statement lacks it;
* ``amount_mismatch``  – same id, different amount;
* ``status_mismatch``  – the channel says paid, we say otherwise (or the reverse
  for reversals and refunds).

Our side of day D (the business day of ``[settlement] timezone``,
Asia/Shanghai by default, as the providers' statements count days): payments of the channel with ``paid_at`` on D that
are SUCCEEDED or REVERSED (the money was taken), and SUCCEEDED refunds whose
success (``updated_at``) is on D. Lines of the statement are looked up by id
whatever their date, so a payment paid just before midnight by one clock and
just after by the other is matched, not reported twice. A reversal that a
provider lists as a refund line without a refund number (Alipay's cancel) is
folded into its payment's status.

The run and each discrepancy are stored (``reconciliation_runs`` /
``reconciliation_items``); the API processes export the latest run per
channel as ``paycore_reconciliation_lines{channel,result}``. A stored run
then turns each discrepancy into a state (:func:`act`): money the statement
shows for a payment paycore had CLOSED, FAILED or REVERSED is late money,
exactly as a late notification (``payment.late_succeeded``, a ``late_success``
item and, by default, its refund); every other discrepancy opens a
``reconciliation_discrepancy`` attention item (once while it is open). Exit status: 0
clean, 1 discrepancies found, 2 the statement could not be fetched.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from channels.client import ProviderClient
import asyncpg

from channels.base import ChannelError, ChannelResult, StatementLine, TradeStatus, UnsupportedFlow
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from paycore.bizday import Calendar
from paycore.core import attention
from paycore.core.decisions import PayVerdict, payment_verdict
from paycore.core.engine import Engine
from paycore.core.journal import load_payment, load_refund
from paycore.core.models import dumps
from paycore.storage.db import init_connection
from paycore.textfmt import render_table

log = logging.getLogger("paycore.reconcile")

RESULTS = ("matched", "missing_ours", "missing_channel", "amount_mismatch", "status_mismatch")
DISCREPANCIES = RESULTS[1:]


@dataclass(slots=True)
class Item:
    result: str
    kind: str                     # payment | refund
    out_trade_no: str
    out_refund_no: str | None = None
    channel_trade_no: str | None = None
    merchant_id: str | None = None
    our_amount: int | None = None
    channel_amount: int | None = None
    our_status: str | None = None
    channel_status: str | None = None


@dataclass(slots=True)
class Report:
    channel: str
    day: date
    statement_lines: int = 0
    our_lines: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    items: list[Item] = field(default_factory=list)   # discrepancies only
    run_id: int | None = None

    @property
    def clean(self) -> bool:
        return not any(self.counts[r] for r in DISCREPANCIES)

    def add(self, item: Item) -> None:
        self.counts[item.result] += 1
        if item.result != "matched":
            self.items.append(item)

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "date": self.day.isoformat(), "run_id": self.run_id,
                "statement_lines": self.statement_lines, "our_lines": self.our_lines, "summary": self.counts,
                "discrepancies": [asdict(i) for i in self.items]}


# -------------------------------------------------------------------- matching
_OUR_PAYMENTS = ("select id, merchant_id, amount, status, channel_trade_no from payments "
                 "where channel = $1 and paid_at >= $2 and paid_at < $3 and status in ('SUCCEEDED', 'REVERSED')")
_OUR_REFUNDS = ("select r.id, r.payment_id, r.merchant_id, r.amount, r.status, r.channel_refund_no from refunds r "
                "join payments p on p.id = r.payment_id where p.channel = $1 and r.status = 'SUCCEEDED' "
                "and r.updated_at >= $2 and r.updated_at < $3")


async def match(conn: Any, channel: str, day: date, lines: list[StatementLine], cal: Calendar) -> Report:
    """Compare ``lines`` (the channel's statement for business day ``day``) with Postgres."""
    start, end = cal.bounds(day)
    rep = Report(channel=channel, day=day, statement_lines=len(lines))
    ours_p = {r["id"]: r for r in await conn.fetch(_OUR_PAYMENTS, channel, start, end)}
    ours_r = {r["id"]: r for r in await conn.fetch(_OUR_REFUNDS, channel, start, end)}
    rep.our_lines = len(ours_p) + len(ours_r)

    pay_lines: list[StatementLine] = []
    reversal_lines: list[StatementLine] = []
    refund_lines: list[StatementLine] = []
    for ln in lines:
        if ln.kind == "payment":
            pay_lines.append(ln)
        elif ln.status == "REVERSED" and not ln.out_refund_no:
            reversal_lines.append(ln)
        else:
            refund_lines.append(ln)
    reversed_ids = {ln.out_trade_no for ln in reversal_lines} | \
                   {ln.out_trade_no for ln in pay_lines if ln.status == "REVERSED"}

    # statement lines are looked up by id whatever their date
    want_p = {ln.out_trade_no for ln in pay_lines} | {ln.out_trade_no for ln in reversal_lines}
    extra = want_p - ours_p.keys()
    all_p = dict(ours_p)
    if extra:
        for r in await conn.fetch("select id, merchant_id, amount, status, channel_trade_no from payments "
                                  "where id = any($1::text[]) and channel = $2", list(extra), channel):
            all_p[r["id"]] = r
    want_r = {ln.out_refund_no for ln in refund_lines if ln.out_refund_no} - ours_r.keys()
    all_r = dict(ours_r)
    if want_r:
        for r in await conn.fetch("select r.id, r.payment_id, r.merchant_id, r.amount, r.status, "
                                  "r.channel_refund_no from refunds r where r.id = any($1::text[])", list(want_r)):
            all_r[r["id"]] = r

    seen_p: set[str] = set()
    for ln in pay_lines:
        if ln.out_trade_no in seen_p:
            continue   # a provider listing one payment twice (paid, then revoked) counts it once
        seen_p.add(ln.out_trade_no)
        ch_status = "REVERSED" if ln.out_trade_no in reversed_ids else "SUCCEEDED"
        ours = all_p.get(ln.out_trade_no)
        item = Item("matched", "payment", ln.out_trade_no, channel_trade_no=ln.channel_trade_no,
                    channel_amount=ln.amount, channel_status=ch_status)
        if ours is None:
            item.result = "missing_ours"
        else:
            item.merchant_id, item.our_amount, item.our_status = ours["merchant_id"], ours["amount"], ours["status"]
            if ours["amount"] != ln.amount:
                item.result = "amount_mismatch"
            elif ours["status"] != ch_status:
                item.result = "status_mismatch"
        rep.add(item)
    # a reversal line whose payment line the provider left out of the day
    for ln in reversal_lines:
        if ln.out_trade_no in seen_p:
            continue
        seen_p.add(ln.out_trade_no)
        ours = all_p.get(ln.out_trade_no)
        item = Item("matched", "payment", ln.out_trade_no, channel_trade_no=ln.channel_trade_no,
                    channel_amount=ln.amount, channel_status="REVERSED")
        if ours is None:
            item.result = "missing_ours"
        else:
            item.merchant_id, item.our_amount, item.our_status = ours["merchant_id"], ours["amount"], ours["status"]
            if ours["status"] != "REVERSED":
                item.result = "status_mismatch"
        rep.add(item)

    seen_r: set[str] = set()
    for ln in refund_lines:
        ours = all_r.get(ln.out_refund_no or "")
        if ours is None and not ln.out_refund_no:
            # no refund number in the file: the one SUCCEEDED refund of that payment with that amount
            ours = next((r for r in all_r.values() if r["payment_id"] == ln.out_trade_no
                         and r["amount"] == ln.amount and r["id"] not in seen_r), None)
        item = Item("matched", "refund", ln.out_trade_no, out_refund_no=ln.out_refund_no,
                    channel_trade_no=ln.channel_trade_no, channel_amount=ln.amount, channel_status="SUCCEEDED")
        if ours is None or ours["payment_id"] != ln.out_trade_no:
            item.result = "missing_ours"
        else:
            seen_r.add(ours["id"])
            item.out_refund_no = ours["id"]
            item.merchant_id, item.our_amount, item.our_status = ours["merchant_id"], ours["amount"], ours["status"]
            if ours["amount"] != ln.amount:
                item.result = "amount_mismatch"
            elif ours["status"] != "SUCCEEDED":
                item.result = "status_mismatch"
        rep.add(item)

    for pid, r in ours_p.items():
        if pid not in seen_p:
            rep.add(Item("missing_channel", "payment", pid, channel_trade_no=r["channel_trade_no"],
                         merchant_id=r["merchant_id"], our_amount=r["amount"], our_status=r["status"]))
    for rid, r in ours_r.items():
        if rid not in seen_r:
            rep.add(Item("missing_channel", "refund", r["payment_id"], out_refund_no=rid,
                         channel_trade_no=r["channel_refund_no"], merchant_id=r["merchant_id"],
                         our_amount=r["amount"], our_status=r["status"]))
    return rep


# ---------------------------------------------------------------------- storing
async def store(conn: Any, rep: Report, started_at: datetime) -> int:
    async with conn.transaction():
        run_id = await conn.fetchval(
            "insert into reconciliation_runs (channel, day, status, started_at, statement_lines, our_lines, matched, "
            "missing_ours, missing_channel, amount_mismatch, status_mismatch) "
            "values ($1, $2, 'DONE', $3, $4, $5, $6, $7, $8, $9, $10) returning id",
            rep.channel, rep.day, started_at, rep.statement_lines, rep.our_lines,
            *(rep.counts[r] for r in RESULTS))
        if rep.items:
            await conn.copy_records_to_table(
                "reconciliation_items",
                records=[(run_id, i.result, i.kind, i.out_trade_no, i.out_refund_no, i.channel_trade_no,
                          i.merchant_id, i.our_amount, i.channel_amount, i.our_status, i.channel_status)
                         for i in rep.items],
                columns=("run_id", "result", "kind", "out_trade_no", "out_refund_no", "channel_trade_no",
                         "merchant_id", "our_amount", "channel_amount", "our_status", "channel_status"))
    rep.run_id = run_id
    return run_id


async def store_error(conn: Any, channel: str, day: date, started_at: datetime, error: str) -> int:
    return await conn.fetchval("insert into reconciliation_runs (channel, day, status, started_at, error) "
                               "values ($1, $2, 'ERROR', $3, $4) returning id", channel, day, started_at, error[:500])


async def latest_runs(conn: Any, day: date) -> dict[str, dict[str, Any]]:
    """channel → its latest reconciliation run of ``day`` (status, discrepancy count, error)."""
    rows = await conn.fetch(
        "select distinct on (channel) channel, id, status, error, "
        + " + ".join(DISCREPANCIES) + " as discrepancies from reconciliation_runs where day = $1 "
        "order by channel, id desc", day)
    return {r["channel"]: dict(r) for r in rows}


# ------------------------------------------------------------------ acting
async def act(engine: Engine, rep: Report) -> dict[str, int]:
    """Turn each discrepancy of a stored run into a state, through the engine:
    late money for a payment paycore had ended without it (source "statement"),
    else a ``reconciliation_discrepancy`` item on the payment (or, for money of
    an order paycore never made, an item naming no payment). Returns how many
    of each were opened (a finding still open from an earlier run opens nothing)."""
    done = {"late_money": 0, "attention": 0}
    for i in rep.items:
        p = await load_payment(engine.pool, i.out_trade_no)
        if p is not None and p.channel != rep.channel:
            p = None
        evidence = {"source": "statement", "run_id": rep.run_id, "day": rep.day.isoformat(), "result": i.result,
                    "kind": i.kind, "out_trade_no": i.out_trade_no, "out_refund_no": i.out_refund_no,
                    "channel_trade_no": i.channel_trade_no, "our_amount": i.our_amount,
                    "channel_amount": i.channel_amount, "our_status": i.our_status,
                    "channel_status": i.channel_status}
        if p is not None and i.kind == "payment" and i.channel_status == "SUCCEEDED" and i.result != "amount_mismatch":
            verdict = payment_verdict(p, TradeStatus.SUCCEEDED, i.channel_amount)
            if verdict is PayVerdict.LATE_SUCCESS:
                await engine.apply_result(p, ChannelResult(TradeStatus.SUCCEEDED, channel_trade_no=i.channel_trade_no,
                                                           amount=i.channel_amount), source="statement")
                done["late_money"] += 1
                continue
            if p.late_paid_at is not None:
                continue      # late money already recorded (by a notification or an earlier run)
        if p is None:
            if await _open_unlinked(engine, rep.channel, evidence):
                done["attention"] += 1
            continue
        refund_id = None
        if i.kind == "refund" and i.out_refund_no:
            r = await load_refund(engine.pool, i.out_refund_no)
            refund_id = r.id if r is not None and r.payment_id == p.id else None
        if await _open_on(engine, p, evidence, refund_id):
            done["attention"] += 1
    return done


async def _open_on(engine: Engine, p: Any, evidence: dict[str, Any], refund_id: str | None) -> bool:
    # flag() opens an item once: the same payment back while it is open (True: opened now)
    return await engine.flag(p, attention.RECON_DISCREPANCY, evidence, refund_id=refund_id) is not p


async def _open_unlinked(engine: Engine, channel: str, evidence: dict[str, Any]) -> bool:
    """Money at the provider for an order paycore never made: an item naming no payment (an
    operator acknowledges it once checked), once per open (channel, order, refund)."""
    if await engine.pool.fetchval(
            "select 1 from attention_items where kind = $1 and channel = $2 and status = 'OPEN' and payment_id is null "
            "and evidence->>'out_trade_no' = $3 and coalesce(evidence->>'out_refund_no', '') = $4",
            attention.RECON_DISCREPANCY, channel, evidence["out_trade_no"], evidence["out_refund_no"] or ""):
        return False
    await attention.record_unlinked(engine.pool, attention.RECON_DISCREPANCY, channel, dumps(evidence).decode())
    engine.metrics.attention_opened.labels(channel, attention.RECON_DISCREPANCY).inc()
    return True


# ---------------------------------------------------------------------- showing
def render(rep: Report) -> str:
    c = rep.counts
    run = f"run {rep.run_id}" if rep.run_id is not None else "not stored"
    head = (f"reconciliation of {rep.channel} for {rep.day.isoformat()} ({run}): "
            f"{rep.statement_lines} statement lines, {rep.our_lines} of ours\n"
            f"  matched {c['matched']}, missing on our side {c['missing_ours']}, "
            f"missing on the channel's side {c['missing_channel']}, amount mismatches {c['amount_mismatch']}, "
            f"status mismatches {c['status_mismatch']}")
    if not rep.items:
        return head + "\n  no discrepancies"
    rows = [{"result": i.result, "kind": i.kind, "out_trade_no": i.out_trade_no, "refund": i.out_refund_no,
             "merchant": i.merchant_id, "ours": _side(i.our_amount, i.our_status),
             "channel": _side(i.channel_amount, i.channel_status)} for i in rep.items]
    return head + "\n\n" + render_table(rows, ("result", "kind", "out_trade_no", "refund", "merchant", "ours",
                                                "channel"))


def _side(amount: int | None, status: str | None) -> str | None:
    if amount is None:
        return None
    return f"{amount // 100}.{amount % 100:02d} {status or ''}".strip()


# ------------------------------------------------------------------- a run
async def run(cfg: Any, channel: str, day: date, *, save: bool = True, engine: Engine | None = None) -> Report:
    """Fetch the statement, match, store and (with ``engine``, when stored) act on each
    discrepancy. Raises ChannelError/UnsupportedFlow if no statement."""
    settings = cfg.channels.get(channel)
    if settings is None or channel not in ADAPTERS:
        raise LookupError(f"channel {channel} is not configured")
    started = datetime.now(timezone.utc)
    conn = await asyncpg.connect(cfg.database.url, timeout=cfg.database.connect_timeout)
    await init_connection(conn)
    try:
        async with ProviderClient() as session:
            adapter = ADAPTERS[channel](settings, ChannelHttp(session, channel, max(settings.timeout, 30.0)))
            try:
                lines = await adapter.statement(day)
            except (ChannelError, UnsupportedFlow) as e:
                if save:
                    await store_error(conn, channel, day, started, f"{type(e).__name__}: {e}")
                raise
            finally:
                await adapter.aclose()
        rep = await match(conn, channel, day, lines, cfg.settlement.calendar())
        if save:
            await store(conn, rep, started)
            if engine is not None:
                acted = await act(engine, rep)
                log.info("reconciliation of %s %s: %s", channel, day, acted)
        return rep
    finally:
        await conn.close()
