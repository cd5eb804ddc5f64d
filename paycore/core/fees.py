"""Fees: the merchant's fee rules and the fee of a payment.

A rule belongs to a merchant and a channel × method (either may be ``*``)
and has an effective-from instant. For a payment that succeeds at ``at``,
the rule is the most specific one (channel and method named, then channel,
then method, then neither) among those of its merchant already in effect at
``at``, the latest of them. No rule: the fee is 0.

The fee, in integer fen and never a float:

    percent = half_up(amount × rate_ppm / 1 000 000)        # to the fen, half up
    fee     = percent + fixed, then at least min_fee, at most max_fee, at most amount

Half up: 0.5 fen and above rounds up (``(amount × ppm + 500 000) // 1 000 000``
on non-negative integers). The fee is computed once, when the payment
becomes SUCCEEDED, and stored on it; rules are append-only, so a later rule
never changes a fee already charged.

A refund returns its share of the fee when the channel's policy is
``proportional`` (``[settlement] fee_refund``): cumulatively, so that the
shares of refunds that add up to the amount add up to the fee exactly:
``half_up(fee × refunded_after / amount) - half_up(fee × refunded_before / amount)``.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

PPM = 1_000_000
ANY = "*"


def half_up_div(n: int, d: int) -> int:
    """n / d rounded half up, for n >= 0 and d > 0, in integers."""
    if n < 0 or d <= 0:
        raise ValueError("half_up_div takes n >= 0 and d > 0")
    return (2 * n + d) // (2 * d)


@dataclass(frozen=True, slots=True)
class FeeRule:
    merchant_id: str
    channel: str
    method: str
    rate_ppm: int
    fixed: int
    min_fee: int | None
    max_fee: int | None
    effective_from: datetime
    id: int = 0

    @property
    def specificity(self) -> int:
        return (2 if self.channel != ANY else 0) + (1 if self.method != ANY else 0)

    def fee(self, amount: int) -> int:
        return compute_fee(amount, self.rate_ppm, self.fixed, self.min_fee, self.max_fee)


def compute_fee(amount: int, rate_ppm: int, fixed: int = 0, min_fee: int | None = None,
                max_fee: int | None = None) -> int:
    """The fee of ``amount`` fen (see the module docstring for the rule)."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    fee = half_up_div(amount * rate_ppm, PPM) + fixed
    if min_fee is not None:
        fee = max(fee, min_fee)
    if max_fee is not None:
        fee = min(fee, max_fee)
    return min(fee, amount)   # never more than the payment itself: net is never negative


def refund_fee(fee: int, amount: int, refunded_before: int, refunded_after: int) -> int:
    """The share of ``fee`` a refund from ``refunded_before`` to ``refunded_after`` returns."""
    if amount <= 0 or not 0 <= refunded_before <= refunded_after <= amount:
        raise ValueError("refunds must stay between 0 and the payment amount")
    return half_up_div(fee * refunded_after, amount) - half_up_div(fee * refunded_before, amount)


def pick_rule(rules: Iterable[FeeRule], merchant_id: str, channel: str, method: str,
              at: datetime) -> FeeRule | None:
    best: FeeRule | None = None
    for r in rules:
        if (r.merchant_id != merchant_id or r.channel not in (channel, ANY) or r.method not in (method, ANY)
                or r.effective_from > at):
            continue
        if best is None or (r.specificity, r.effective_from) > (best.specificity, best.effective_from):
            best = r
    return best


_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(%|bp|bps|‰|permille)\s*$")
_UNIT_PPM = {"%": 10_000, "bp": 100, "bps": 100, "‰": 1_000, "permille": 1_000}


def parse_rate(text: str) -> int:
    """``"0.38%"``, ``"38bp"``, ``"3.8‰"`` (or ``3.8permille``) → millionths of the amount (3800).
    A rate finer than a millionth is refused rather than rounded."""
    m = _RATE_RE.match(text)
    if not m:
        raise ValueError(f"a rate is a number with %, bp or ‰ (permille), e.g. 0.38%, not {text!r}")
    try:
        ppm = Decimal(m.group(1)) * _UNIT_PPM[m.group(2)]
    except InvalidOperation:
        raise ValueError(f"not a number: {m.group(1)!r}") from None
    if ppm != ppm.to_integral_value():
        raise ValueError(f"{text} is finer than a millionth of the amount")
    if ppm > PPM:
        raise ValueError("a rate above 100 % makes no sense")
    return int(ppm)


def format_rate(ppm: int) -> str:
    """3800 → ``"0.38%"``."""
    d = (Decimal(ppm) / 10_000).normalize()
    return f"{d:f}%"


def rule_from_row(r: Any) -> FeeRule:
    return FeeRule(merchant_id=r["merchant_id"], channel=r["channel"], method=r["method"], rate_ppm=r["rate_ppm"],
                   fixed=r["fixed"], min_fee=r["min_fee"], max_fee=r["max_fee"],
                   effective_from=r["effective_from"], id=r["id"])


RULE_COLUMNS = "id, merchant_id, channel, method, rate_ppm, fixed, min_fee, max_fee, effective_from"


class FeeBook:
    """Every fee rule, in memory, for the engine.

    Exact, not eventually right: a rule added at ``t`` takes effect no earlier
    than ``t + lead`` (``add`` below, and the CLI, refuse anything sooner), and
    the book is reloaded before a fee is computed for an instant ``lead / 2``
    or more after its last load began. So a rule in effect when a payment
    succeeded is always in the book that prices it. Reloads are shared by the
    payments waiting for them (one query per half lead, at most)."""

    def __init__(self, pool: Any, lead: float) -> None:
        self.pool = pool
        self.lead = lead
        self._rules: tuple[FeeRule, ...] = ()
        self._valid_until = 0.0        # wall clock (epoch seconds)
        self._loading: asyncio.Future[None] | None = None

    async def _load(self) -> None:
        started = time.time()
        rows = await self.pool.fetch(f"select {RULE_COLUMNS} from fee_rules")
        self._rules = tuple(rule_from_row(r) for r in rows)
        self._valid_until = started + self.lead / 2

    async def _fresh(self, at: datetime) -> None:
        while at.timestamp() >= self._valid_until:
            if self._loading is None:
                self._loading = asyncio.ensure_future(self._load())
                loading = self._loading
                try:
                    await loading
                finally:
                    self._loading = None
            else:
                await asyncio.shield(self._loading)

    async def fee(self, merchant_id: str, channel: str, method: str, amount: int, at: datetime) -> int:
        await self._fresh(at)
        rule = pick_rule(self._rules, merchant_id, channel, method, at)
        return rule.fee(amount) if rule else 0


async def add_rule(conn: Any, merchant_id: str, channel: str, method: str, *, rate_ppm: int, fixed: int = 0,
                   min_fee: int | None = None, max_fee: int | None = None, effective_from: datetime | None,
                   lead: float, note: str | None = None) -> dict[str, Any]:
    """Insert a rule; ``effective_from`` None means as soon as allowed (now + lead).
    Refuses a start sooner than ``lead`` seconds from the database's clock."""
    for name, v in (("fixed", fixed), ("min_fee", min_fee), ("max_fee", max_fee)):
        if v is not None and v < 0:
            raise ValueError(f"{name} must not be negative")
    if min_fee is not None and max_fee is not None and min_fee > max_fee:
        raise ValueError("min_fee is above max_fee")
    if not 0 <= rate_ppm <= PPM:
        raise ValueError("rate must be between 0 and 100 %")
    async with conn.transaction():
        earliest = await conn.fetchval("select clock_timestamp() + make_interval(secs => $1)", lead)
        start = effective_from or earliest
        if start < earliest:
            raise ValueError(f"a rule takes effect no sooner than {lead:g} s from now ({earliest.isoformat()}): "
                             "fees already charged are never changed, and every server must see it first")
        row = await conn.fetchrow(
            "insert into fee_rules (merchant_id, channel, method, rate_ppm, fixed, min_fee, max_fee, "
            "effective_from, note) values ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            f"on conflict do nothing returning {RULE_COLUMNS}, note, created_at",
            merchant_id, channel, method, rate_ppm, fixed, min_fee, max_fee, start, note)
        if row is None:
            raise ValueError("a rule for this merchant, channel and method already starts at that instant")
    return dict(row)


async def list_rules(conn: Any, merchant_id: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"select {RULE_COLUMNS}, note, created_at from fee_rules "
                            "where $1::text is null or merchant_id = $1 "
                            "order by merchant_id, channel, method, effective_from", merchant_id)
    return [dict(r) for r in rows]
