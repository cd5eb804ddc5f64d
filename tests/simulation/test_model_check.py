"""A seeded model check of paycore's money decisions (issue 11, item 10).

Thousands of randomly interleaved schedules — pay (answered, lost, or landing
late), timeouts, merchant cancels, customer scans, notifications duplicated
and reordered, lagging queries, refunds (lost answers, late visibility),
process crashes between a provider's action and paycore's commit, and time
passing expiry and deadlines — run against an in-process provider that keeps
the money accounts. paycore's side is the real state machine
(paycore.core.models) and the real decision functions the engine and the
recovery loop call (paycore.core.decisions), orchestrated as the engine does
it: intent first, then the provider, then the commit.

After each schedule (and a quiet period in which recovery and the
notifications run to an end) it asserts, per order: the provider's money and
paycore's final state agree, or an attention item exists; nobody is charged
twice; nothing is refunded beyond what was captured; every state change is
journaled with ``seq`` growing by one. A failing schedule's seed is printed
and reproduces it alone: ``PAYCORE_SIM_ONLY=<seed>``; ``PAYCORE_SIM_SEED``
picks another run of schedules.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from channels.base import Method, RefundStatus, TradeStatus
from paycore.core.decisions import (PayVerdict, RefundVerdict, cancel_outcome, payment_verdict, refund_verdict,
                                    target_of)
from paycore.core.models import Payment, Refund, RefundState, Status

SCHEDULES = int(os.environ.get("PAYCORE_SIM_SCHEDULES", "10000"))
SEED = int(os.environ.get("PAYCORE_SIM_SEED", "20261202"))
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
EXPIRE, GIVE_UP, GRACE, REFUND_DEADLINE = 10, 8, 3, 12   # in steps


class Lost(Exception):
    """The provider's answer never came back (timeout, reset, crash before the commit)."""


@dataclass
class Provider:
    """One order's account at the provider."""

    rng: random.Random
    amount: int
    qr: bool
    tombstone: bool                 # cancel of an unseen order leaves a tombstone
    close_stops_scan: bool          # False: a close does not stop a later scan (Alipay precreate)
    invisible_until_scan: bool
    query_lag: int
    refund_lag: int
    amount_skew: int                # what queries/notifications state minus the real amount
    state: str = "NONE"             # NONE NOTPAY PAID CLOSED REVOKED DECLINED
    charged: int = 0
    charges: int = 0
    refunded: int = 0
    refunds: dict[str, tuple[int, int]] = field(default_factory=dict)   # number -> (amount, visible step)
    tombstoned: bool = False
    created_step: int = 0
    notes: list[tuple[str, object]] = field(default_factory=list)       # pending notifications

    def _charge(self) -> None:
        self.state, self.charged, self.charges = "PAID", self.amount, self.charges + 1
        self.notes.append(("pay", None))

    # the provider's API
    def pay(self, step: int, decline: bool) -> TradeStatus:
        if self.tombstoned or self.state in ("CLOSED", "REVOKED"):
            return TradeStatus.CLOSED
        if self.state != "NONE":
            return self.query(step + 10**6)
        self.created_step = step
        if self.qr:
            self.state = "NOTPAY"
            return TradeStatus.PENDING
        if decline:
            self.state = "DECLINED"
            return TradeStatus.FAILED
        self._charge()
        return TradeStatus.SUCCEEDED

    def scan(self) -> None:
        if self.tombstoned or not self.qr:
            return
        if self.state == "NOTPAY" or (self.state == "CLOSED" and not self.close_stops_scan):
            self._charge()

    def _seen(self, step: int) -> bool:
        if self.state == "NONE" or (self.invisible_until_scan and self.state in ("NOTPAY", "CLOSED")):
            return False
        return step - self.created_step >= self.query_lag

    def stated(self) -> int:
        return self.amount + self.amount_skew

    def query(self, step: int) -> TradeStatus:
        if not self._seen(step):
            return TradeStatus.NOT_FOUND
        return {"NOTPAY": TradeStatus.PENDING, "PAID": TradeStatus.SUCCEEDED, "CLOSED": TradeStatus.CLOSED,
                "REVOKED": TradeStatus.REVERSED, "DECLINED": TradeStatus.FAILED}[self.state]

    def close(self, step: int) -> TradeStatus:
        if self.state == "NONE" or (self.invisible_until_scan and self.state == "NOTPAY"):
            return TradeStatus.NOT_FOUND
        if self.state == "NOTPAY":
            self.state = "CLOSED"
            return TradeStatus.CLOSED
        return self.query(step + 10**6)

    def reverse(self, step: int) -> TradeStatus:
        if self.state == "NONE" or (self.invisible_until_scan and self.state in ("NOTPAY", "CLOSED")):
            if self.tombstone:
                self.tombstoned = True
                if self.state != "NONE":
                    self.state = "REVOKED"
            return TradeStatus.NOT_FOUND
        if self.state == "PAID":
            self.refunded = self.charged        # a reverse of a paid trade gives it all back
        if self.state in ("NOTPAY", "PAID", "CLOSED"):
            self.state = "REVOKED"
        return TradeStatus.REVERSED if self.state == "REVOKED" else self.query(step + 10**6)

    def refund(self, no: str, amount: int, step: int) -> RefundStatus:
        if no in self.refunds:
            amt, visible = self.refunds[no]
            return RefundStatus.SUCCEEDED if step >= visible else RefundStatus.PROCESSING
        if self.state != "PAID" or self.refunded + amount > self.charged:
            return RefundStatus.FAILED
        self.refunds[no] = (amount, step + self.refund_lag)
        self.refunded += amount
        self.notes.append(("refund", no))
        return RefundStatus.SUCCEEDED if self.refund_lag == 0 else RefundStatus.PROCESSING

    def refund_query(self, no: str, step: int) -> RefundStatus:
        if no not in self.refunds or step < self.refunds[no][1]:
            return RefundStatus.NOT_FOUND
        return RefundStatus.SUCCEEDED


@dataclass
class Answer:
    status: TradeStatus
    amount: int | None = None


class Paycore:
    """paycore's committed state for one payment and how the engine drives it."""

    def __init__(self, rng: random.Random, prov: Provider, method: Method, *, tombstone: bool,
                 close_not_found_final: bool, auto_refund: bool) -> None:
        self.rng, self.prov = rng, prov
        self.tombstone, self.close_nf_final, self.auto_refund = tombstone, close_not_found_final, auto_refund
        self.step = 0
        self.p = Payment(id="pay_1", merchant_id="m", merchant_order_no="o", fingerprint="f", amount=prov.amount,
                         currency="CNY", method=method, channel="sim",
                         status=Status.PENDING if method is Method.QR else Status.PROCESSING,
                         expire_at=T0 + timedelta(seconds=EXPIRE), created_at=T0, updated_at=T0)
        self.refunds: dict[str, Refund] = {}
        self.events: list[tuple[int, str]] = [(1, "payment.created")]
        self.attention: set[tuple[str, str | None]] = set()
        self.crash_rate = rng.choice((0.0, 0.1, 0.3))
        self.loss_rate = rng.choice((0.0, 0.1, 0.3))
        self.n_refunds = 0

    # -- infrastructure: the journal, the clock, lost answers ----------------------
    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.step)

    def commit(self, new: Payment, types: list[str]) -> None:
        """A change with its events, seq growing by one per event (the journal's guard)."""
        assert new.seq >= self.p.seq
        for t in types:
            self.events.append((self.events[-1][0] + 1, t))
        new.seq = self.events[-1][0]
        self.p = new

    def call(self, fn, *args):
        """Call the provider; its answer may be lost before or after it acted (a crash included)."""
        if self.rng.random() < self.loss_rate / 2:
            raise Lost()                   # never arrived
        out = fn(*args)
        if self.rng.random() < self.loss_rate / 2 + self.crash_rate / 4:
            raise Lost()                   # arrived and acted; the answer (or our process) was lost
        return out

    def flag(self, kind: str, refund_id: str | None = None) -> None:
        if (kind, refund_id) not in self.attention:
            self.attention.add((kind, refund_id))
            self.commit(replace(self.p), ["attention.opened"])

    # -- the engine --------------------------------------------------------------
    def apply(self, a: Answer) -> None:
        match payment_verdict(self.p, a.status, a.amount):
            case PayVerdict.AMOUNT_MISMATCH:
                self.flag("amount_mismatch")
            case PayVerdict.LATE_SUCCESS:
                n = replace(self.p)
                n.late_paid_at = self.now
                types = ["payment.late_succeeded"]
                r = None
                if self.auto_refund and n.refund_reserved == 0:
                    r = self._new_refund("late", n.amount)
                    n.refund_reserved += r.amount
                    types.append("refund.created")
                self.commit(n, types)
                self.flag("late_success", r.id if r else None)
                if r is not None:
                    self.send_refund(r)
            case PayVerdict.APPLY:
                target = target_of(a.status)
                if target is not None and target is not self.p.status:
                    n = replace(self.p)
                    self.commit(n, [n.transition(target, self.now)])

    def record_intent(self, intent: str) -> None:
        if self.p.intent is None and self.p.status not in (Status.FAILED, Status.CLOSED, Status.REVERSED):
            n = replace(self.p, intent=intent, checks=0)
            self.commit(n, [])

    def expired(self) -> bool:
        if self.p.intent == "close" or self.p.status is Status.PENDING:
            return self.step >= EXPIRE + GRACE
        return self.p.status is not Status.SUCCEEDED and self.step >= GIVE_UP + GRACE

    def drive_intent(self) -> None:
        by_reverse = self.p.intent == "reverse"
        try:
            st = self.call(self.prov.reverse if by_reverse else self.prov.close, self.step)
        except Lost:
            return self._reschedule()
        proven = cancel_outcome(self.p.intent or "close", st, False, by_reverse=by_reverse,
                                close_not_found_final=self.close_nf_final, cancel_is_tombstone=self.tombstone,
                                expired=self.expired())
        if proven is None:
            return self._reschedule()
        if proven is TradeStatus.CLOSED and self.p.status is Status.SUCCEEDED:
            proven = TradeStatus.REVERSED
        elif proven is TradeStatus.REVERSED and self.p.status is Status.PENDING:
            proven = TradeStatus.CLOSED
        self.apply(Answer(proven, self.prov.stated() if proven is TradeStatus.SUCCEEDED else None))

    def _reschedule(self) -> None:
        n = replace(self.p, checks=self.p.checks + 1)
        if n.checks >= 5 and n.intent == "reverse":
            self.flag("outcome_unknown_past_deadline")
            n = replace(self.p, checks=self.p.checks + 1)
        self.commit(n, [])

    def pay(self) -> None:
        try:
            st = self.call(self.prov.pay, self.step, self.rng.random() < 0.15)
        except Lost:
            return                         # PROCESSING/PENDING: recovery asks
        self.apply(Answer(st, self.prov.stated() if st is TradeStatus.SUCCEEDED else None))

    def cancel(self) -> None:
        if self.p.intent is None:
            if self.p.status is Status.PENDING:
                self.record_intent("reverse" if self.tombstone else "close")
            elif self.p.status is Status.PROCESSING:
                self.record_intent("reverse")
            elif self.p.status is Status.SUCCEEDED and self.p.refund_reserved == 0 and self.p.method is Method.BARCODE:
                self.record_intent("reverse")
            else:
                return
        self.drive_intent()

    def recover(self) -> None:
        if self.p.intent is not None:
            return self.drive_intent()
        if not self.p.status.final:
            try:
                st = self.call(self.prov.query, self.step)
            except Lost:
                st = None
            if st in (TradeStatus.SUCCEEDED, TradeStatus.FAILED, TradeStatus.CLOSED, TradeStatus.REVERSED):
                return self.apply(Answer(st, self.prov.stated() if st is TradeStatus.SUCCEEDED else None))
            if self.p.status is Status.PENDING and self.step >= EXPIRE:
                self.record_intent("reverse" if self.tombstone else "close")
                return self.drive_intent()
            if self.p.status is Status.PROCESSING and self.step >= GIVE_UP:
                self.record_intent("reverse")
                return self.drive_intent()
        for r in list(self.refunds.values()):
            if r.status is RefundState.PROCESSING and r.next_check_at is not None:
                self.recover_refund(r)

    # -- refunds -----------------------------------------------------------------
    def _new_refund(self, no: str, amount: int) -> Refund:
        self.n_refunds += 1
        r = Refund(id=f"rfd_{self.n_refunds}", payment_id=self.p.id, merchant_id="m", refund_no=no, fingerprint="",
                   amount=amount, status=RefundState.PROCESSING, created_at=self.now, updated_at=self.now,
                   next_check_at=self.now)
        self.refunds[r.id] = r
        return r

    def merchant_refund(self) -> None:
        if self.p.status is not Status.SUCCEEDED or self.p.intent is not None:
            return                          # 409: only a SUCCEEDED payment with no reversal under way
        amount = self.rng.choice((self.p.amount, self.p.amount // 2, 1))
        if self.p.refund_reserved + amount > self.p.amount:
            return                          # 422 REFUND_EXCEEDS_AMOUNT: nothing happens
        r = self._new_refund(f"r{self.n_refunds}", amount)
        n = replace(self.p, refund_reserved=self.p.refund_reserved + amount)
        self.commit(n, ["refund.created"])  # the intent, before the provider is asked
        self.send_refund(r)

    def send_refund(self, r: Refund) -> None:
        try:
            st = self.call(self.prov.refund, r.id, r.amount, self.step)
        except Lost:
            return
        self.apply_refund(r, st)

    def apply_refund(self, r: Refund, st: RefundStatus) -> None:
        r = self.refunds[r.id]
        past = self.step - int((r.created_at - T0).total_seconds()) >= REFUND_DEADLINE
        v = refund_verdict(self.p, r, st, past_deadline=past)
        n = replace(self.p)
        new = replace(r)
        match v:
            case RefundVerdict.SUCCEED:
                et = new.transition(RefundState.SUCCEEDED, self.now)
                n.refunded_amount += r.amount
            case RefundVerdict.LATE_SUCCEED:
                et = new.transition(RefundState.SUCCEEDED, self.now)
                n.refund_reserved += r.amount
                n.refunded_amount += r.amount
            case RefundVerdict.FAIL:
                et = new.transition(RefundState.FAILED, self.now)
                n.refund_reserved -= r.amount
            case RefundVerdict.EXPIRE:
                new.next_check_at = None
                self.refunds[r.id] = new
                return self.flag("outcome_unknown_past_deadline", r.id)
            case RefundVerdict.CONFLICT:
                return self.flag("refund_late_success_conflict", r.id)
            case _:
                return
        assert n.refunded_amount <= n.refund_reserved <= n.amount, (n.refunded_amount, n.refund_reserved, n.amount)
        self.refunds[r.id] = new
        self.commit(n, [et])

    def recover_refund(self, r: Refund) -> None:
        try:
            st = self.call(self.prov.refund_query, r.id, self.step)
        except Lost:
            st = RefundStatus.PROCESSING
        past = self.step - int((r.created_at - T0).total_seconds()) >= REFUND_DEADLINE
        if st is RefundStatus.NOT_FOUND and not past:
            try:
                sent = self.call(self.prov.refund, r.id, r.amount, self.step)
            except Lost:
                sent = None
            st = sent if sent is RefundStatus.SUCCEEDED else RefundStatus.PROCESSING
        self.apply_refund(r, st)

    # -- notifications -----------------------------------------------------------
    def deliver(self, i: int) -> None:
        kind, ref = self.prov.notes[i]
        if self.rng.random() < 0.5:         # delivered and acknowledged; otherwise retried (a duplicate later)
            self.prov.notes.pop(i)
        if kind == "pay":
            self.apply(Answer(TradeStatus.SUCCEEDED if self.prov.state in ("PAID",) else target_status(self.prov),
                              self.prov.stated()))
        else:
            r = next((x for x in self.refunds.values() if x.id == ref), None)
            if r is not None:
                self.apply_refund(r, RefundStatus.SUCCEEDED)


def target_status(prov: Provider) -> TradeStatus:
    """What a notification says of a trade that is no longer PAID (reversed, refunded...)."""
    return TradeStatus.SUCCEEDED if prov.charged else TradeStatus.CLOSED


def run_schedule(seed: int) -> tuple[Paycore, list[str]]:
    rng = random.Random(seed)
    qr = rng.random() < 0.5
    tombstone = rng.random() < 0.5
    amount = rng.choice((100, 2500, 99999))
    prov = Provider(rng, amount, qr, tombstone=tombstone, close_stops_scan=rng.random() < 0.5,
                    invisible_until_scan=qr and rng.random() < 0.5, query_lag=rng.choice((0, 0, 2, 5)),
                    refund_lag=rng.choice((0, 0, 3, 8)), amount_skew=rng.choice((0,) * 9 + (-1,)))
    pc = Paycore(rng, prov, Method.QR if qr else Method.BARCODE, tombstone=tombstone,
                 close_not_found_final=rng.random() < 0.3, auto_refund=rng.random() < 0.8)
    trace: list[str] = []
    pc.pay()
    for pc.step in range(1, rng.randint(5, 30)):
        actions = ["recover", "recover", "tick", "cancel", "refund", "scan"]
        if prov.notes:
            actions += ["notify", "notify"]
        a = rng.choice(actions)
        trace.append(f"{pc.step}:{a}")
        match a:
            case "recover":
                pc.recover()
            case "cancel":
                pc.cancel()
            case "refund":
                pc.merchant_refund()
            case "scan":
                prov.scan()
            case "notify":
                pc.deliver(rng.randrange(len(prov.notes)))   # any pending one: reordered
    # quiet period: time passes every deadline; recovery and the provider's retries run to an end
    pc.loss_rate = pc.crash_rate = 0.0
    for pc.step in range(max(pc.step + 1, 31), 31 + 60):
        pc.recover()
        while prov.notes:
            pc.deliver(0)
    return pc, trace


def check(pc: Paycore) -> list[str]:
    """The invariants; an empty list when the schedule ended well."""
    prov, p = pc.prov, pc.p
    bad = []
    seqs = [s for s, _ in pc.events]
    if seqs != list(range(1, len(seqs) + 1)) or p.seq != seqs[-1]:
        bad.append(f"journal seq not 1..n: {seqs}, payment seq {p.seq}")
    if prov.charges > 1:
        bad.append(f"charged {prov.charges} times")
    if prov.refunded > prov.charged:
        bad.append(f"refunded {prov.refunded} > captured {prov.charged}")
    if not p.refunded_amount <= p.refund_reserved <= p.amount:
        bad.append(f"refund amounts out of bounds: {p.refunded_amount} {p.refund_reserved} {p.amount}")
    ours = (p.amount if p.status is Status.SUCCEEDED or p.late_paid_at else 0) - p.refunded_amount
    theirs = prov.charged - prov.refunded
    if ours != theirs and not pc.attention:
        bad.append(f"silent disagreement: paycore {p.status} net {ours}, provider {prov.state} net {theirs}")
    return bad


def test_model_check_schedules():
    rng = random.Random(SEED)
    only = os.environ.get("PAYCORE_SIM_ONLY")
    seeds = [int(only)] if only else [rng.getrandbits(48) for _ in range(SCHEDULES)]
    t0 = time.perf_counter()
    failures = []
    flagged = 0
    for s in seeds:
        pc, trace = run_schedule(s)
        bad = check(pc)
        flagged += bool(pc.attention)
        if bad:
            failures.append((s, bad, trace))
    took = time.perf_counter() - t0
    print(f"\nmodel check: {len(seeds)} schedules, seed {SEED}, {took:.1f} s, {len(failures)} silent "
          f"disagreements, {flagged} schedules with an attention item")
    assert not failures, "\n".join(f"PAYCORE_SIM_ONLY={s}: {b} trace {t[:40]}"
                                   for s, b, t in failures[:5])


def test_a_failing_schedule_reproduces_from_its_seed():
    a, ta = run_schedule(12345)
    b, tb = run_schedule(12345)
    assert (ta, a.events, a.p.status, a.prov.charged) == (tb, b.events, b.p.status, b.prov.charged)
