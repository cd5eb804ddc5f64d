"""``paycore maintain``: partitions ahead, history past its retention dropped.

The history tables are partitioned by time (migration 012, docs/data.md). One
maintenance round, run by every node (each server's :class:`Maintainer` loop,
or the command from cron) but by one at a time (a session advisory lock that
the others do not wait for):

1. creates the partitions of the coming days / months (``paycore_ensure_partitions``,
   standalone tables then ATTACH: writers never wait on it);
2. finishes a DETACH … CONCURRENTLY that an earlier round left half done;
3. for each partition entirely past its retention, checks that its rows may go,
   detaches it CONCURRENTLY (writers never wait), checks again on the detached
   table (nothing can reach it any more), exports it if ``export_dir`` is set,
   and drops it; a partition that may not go yet is re-attached and reported.

What may go:
  events            older than ``events_days`` AND published (no outbox row from before the
                    partition's end) AND settled (every business day it touches closed), unless
                    ``require_settled`` is off;
  webhooks          older than ``webhooks_months`` AND none PENDING (a delivery still due);
  settlement_lines  older than ``settlement_lines_months`` AND every day they are on closed.

Every DDL statement runs under ``lock_timeout``: a round that cannot get a
lock at once gives up and the next round tries again, instead of queueing
writers behind it.
"""
from __future__ import annotations

import asyncio
import gzip
import logging
import os
import random
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg

from paycore.bizday import Calendar
from paycore.config import Config, DataConfig
from paycore.storage import db
from paycore.tasks import Loop

log = logging.getLogger("paycore.maintain")
LOCK_KEY = 7261012   # the session advisory lock of a maintenance round
_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    column: str
    unit: str   # 'day' | 'month'


TABLES = (Table("events", "occurred_at", "day"), Table("webhooks", "created_at", "month"),
          Table("settlement_lines", "occurred_at", "month"))


@dataclass(slots=True)
class Partition:
    name: str
    lo: datetime
    hi: datetime
    pending_detach: bool = False


@dataclass
class Report:
    ran: bool = True                                   # False: another node held the lock
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    exported: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # past retention but not allowed to go: why
    partitions: dict[str, int] = field(default_factory=dict)
    ahead_until: dict[str, str] = field(default_factory=dict)  # the end of the last partition

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def months_back(at: datetime, months: int) -> datetime:
    y, m = divmod(at.year * 12 + at.month - 1 - months, 12)
    return at.replace(year=y, month=m + 1, day=1, hour=0, minute=0, second=0, microsecond=0)


def retention_cutoff(table: Table, cfg: DataConfig, now: datetime) -> datetime:
    """Partitions that end at or before this instant are past their retention."""
    if table.name == "events":
        return now - timedelta(days=cfg.events_days)
    months = cfg.webhooks_months if table.name == "webhooks" else cfg.settlement_lines_months
    return months_back(now, months)


def ahead(table: Table, cfg: DataConfig, now: datetime) -> datetime:
    if table.unit == "day":
        return now + timedelta(days=cfg.events_ahead_days)
    return months_back(now, -cfg.ahead_months)


def parse_bound(expr: str) -> tuple[datetime, datetime]:
    """``FOR VALUES FROM ('2026-12-02 00:00:00+00') TO (…)`` (session time zone UTC) → (lo, hi)."""
    m = _BOUND.search(expr)
    if not m:
        raise ValueError(f"not a range partition bound: {expr!r}")
    return datetime.fromisoformat(m.group(1)), datetime.fromisoformat(m.group(2))


def days_between(cal: Calendar, lo: datetime, hi: datetime) -> list[date]:
    """Every business day that an instant in [lo, hi) can belong to."""
    first, last = cal.day_of(lo), cal.day_of(hi - timedelta(microseconds=1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


async def partitions(conn: Any, parent: str) -> list[Partition]:
    rows = await conn.fetch(
        "select c.relname, pg_get_expr(c.relpartbound, c.oid) as bound, i.inhdetachpending "
        "from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = $1::regclass "
        "order by c.relname", parent)
    out = []
    for r in rows:
        lo, hi = parse_bound(r["bound"])
        out.append(Partition(r["relname"], lo, hi, r["inhdetachpending"]))
    return out


class Maintenance:
    """One round's work on one connection (session time zone UTC, lock_timeout set)."""

    def __init__(self, conn: asyncpg.Connection, cfg: DataConfig, cal: Calendar) -> None:
        self.conn = conn
        self.cfg = cfg
        self.cal = cal

    async def run(self, now: datetime | None = None) -> Report:
        conn = self.conn
        if not await conn.fetchval("select pg_try_advisory_lock($1)", LOCK_KEY):
            return Report(ran=False)
        try:
            await conn.execute("set time zone 'UTC'")
            await conn.execute(f"set lock_timeout = {int(self.cfg.lock_timeout_ms)}")
            now = now or datetime.now(timezone.utc)
            rep = Report()
            for t in TABLES:
                await self._finish_detaches(t)
                rep.created += [r[0] for r in await conn.fetch(
                    "select paycore_ensure_partitions($1, $2, $3, $4, $5)", t.name, t.column, t.unit,
                    now - timedelta(days=1), ahead(t, self.cfg, now))]
                cutoff = retention_cutoff(t, self.cfg, now)
                for p in await partitions(conn, t.name):
                    if p.hi <= cutoff:
                        try:
                            await self._retire(t, p, rep)
                        except asyncpg.LockNotAvailableError:
                            # busy (a long transaction): leave it for the next round rather than queue writers
                            rep.kept[p.name] = "lock not available now; the next round retries"
                parts = await partitions(conn, t.name)
                rep.partitions[t.name] = len(parts)
                if parts:
                    rep.ahead_until[t.name] = max(p.hi for p in parts).isoformat()
            return rep
        finally:
            await conn.execute("select pg_advisory_unlock($1)", LOCK_KEY)

    async def _finish_detaches(self, t: Table) -> None:
        for p in await partitions(self.conn, t.name):
            if p.pending_detach:   # an earlier round stopped half-way through DETACH … CONCURRENTLY
                await self.conn.execute(f'alter table "{t.name}" detach partition "{p.name}" finalize')
                await self._reattach(t, p)

    async def _reattach(self, t: Table, p: Partition) -> None:
        # the partition's range check (migration 012) spares ATTACH its validation scan
        await self.conn.execute(f"alter table \"{t.name}\" attach partition \"{p.name}\" "
                                f"for values from ('{p.lo.isoformat()}') to ('{p.hi.isoformat()}')")

    async def _retire(self, t: Table, p: Partition, rep: Report) -> None:
        why = await self.why_kept(t, p)
        if why:
            rep.kept[p.name] = why
            return
        # CONCURRENTLY: two transactions, never more than SHARE UPDATE EXCLUSIVE on the parent
        await self.conn.execute(f'alter table "{t.name}" detach partition "{p.name}" concurrently')
        why = await self.why_kept(t, p)   # again, now that nothing can write to it
        if why:
            await self._reattach(t, p)
            rep.kept[p.name] = why
            return
        detail = None
        if self.cfg.export_dir:
            detail = await self.export(p.name)
            rep.exported.append(p.name)
        await self.conn.execute(f'drop table "{p.name}"')
        await self.conn.execute("insert into partition_log (partition, parent, action, detail) values ($1, $2, $3, $4)",
                                p.name, t.name, "exported" if detail else "dropped", detail)
        rep.dropped.append(p.name)
        log.info("maintain: dropped %s (%s to %s)%s", p.name, p.lo.date(), p.hi.date(),
                 f", exported to {detail}" if detail else "")

    async def why_kept(self, t: Table, p: Partition) -> str | None:
        """None when the partition's rows may go; otherwise the reason they stay."""
        conn = self.conn
        if t.name == "events":
            if await conn.fetchval("select exists (select 1 from outbox where created_at < $1)", p.hi):
                return "unpublished events (the outbox still holds events from before its end)"
            if self.cfg.require_settled:
                days = days_between(self.cal, p.lo, p.hi)
                closed = {r[0] for r in await conn.fetch(
                    "select day from settlement_closes where day = any($1::date[])", days)}
                open_days = [d.isoformat() for d in days if d not in closed]
                if open_days:
                    return "not settled: business day(s) " + ", ".join(open_days) + " not closed"
        elif t.name == "webhooks":
            if await conn.fetchval(f"select exists (select 1 from \"{p.name}\" where status = 'PENDING')"):
                return "webhook deliveries still pending"
        elif t.name == "settlement_lines":
            lo, hi = await conn.fetchrow(f'select min(day), max(day) from "{p.name}"')
            if lo is not None:
                days = [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]
                closed = {r[0] for r in await conn.fetch(
                    "select day from settlement_closes where day = any($1::date[])", days)}
                open_days = [d.isoformat() for d in days if d not in closed]
                if open_days:
                    return "lines on open day(s) " + ", ".join(open_days[:5]) + (" …" if len(open_days) > 5 else "")
        return None

    async def export(self, name: str) -> str:
        """The detached partition as gzip'd CSV with a header; written aside, then renamed."""
        folder = Path(self.cfg.export_dir)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{name}.csv.gz"
        part = folder / f".{name}.csv.gz.part"
        with gzip.open(part, "wb") as out:
            await self.conn.copy_from_table(name, output=out, format="csv", header=True)
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        part.replace(final)
        return str(final)


async def maintain(cfg: Config, now: datetime | None = None) -> Report:
    """One round on a connection of its own (the advisory lock belongs to the session)."""
    conn = await db.connect(cfg.database)
    try:
        return await Maintenance(conn, cfg.data, cfg.settlement.calendar()).run(now)
    finally:
        await conn.close()


class Maintainer(Loop):
    """A maintenance round every ``data.maintain_interval`` seconds in every server process; the
    advisory lock makes the others skip while one works. The first round waits a random 30 s to
    5 min (never more than the interval): a deploy starts every worker at once, and partition DDL
    right then would queue the payment path behind its locks (partitions are made 14 days ahead,
    so nothing is short meanwhile; `paycore maintain` runs a round at once)."""
    name = "maintain"

    def __init__(self, cfg: Config) -> None:
        super().__init__(interval=cfg.data.maintain_interval, backoff_min=30.0, backoff_max=600.0)
        self.cfg = cfg

    async def setup(self) -> None:
        await asyncio.sleep(min(self.interval, random.uniform(30.0, 300.0)))

    async def step(self) -> float:
        rep = await maintain(self.cfg)
        if rep.ran and (rep.created or rep.dropped or rep.kept):
            self.log.info("maintain: created %d, dropped %d, kept %d partitions past retention",
                          len(rep.created), len(rep.dropped), len(rep.kept))
        return self.interval

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, (asyncpg.LockNotAvailableError, asyncpg.PostgresConnectionError,
                                asyncpg.InterfaceError, OSError, asyncio.TimeoutError))
