"""What an answer from a provider means for a payment or a refund: pure functions.

The engine and the recovery loop ask these, and so does the model-checking
simulation (tests/simulation), so the simulation checks the very rules that
run in production. Nothing here does I/O or reads a clock: callers pass the
facts (statuses, amounts, whether a deadline has passed).

The rules, in short (docs/reliability.md has the per-channel table):

* A "not found" is never proof on its own. A close answered "not found"
  ends a payment only where the channel says so (``close_not_found_final``)
  or where a cancel leaves a tombstone (``cancel_is_tombstone``); otherwise
  the payment stays open and checked until its code expired plus the grace.
* Money reported for a payment that is already CLOSED, FAILED or REVERSED is
  late money: an event, an attention item and (by default) a refund — never
  a log line.
* An amount that differs from the payment's never moves money state: it is
  an attention item.
* A refund query that finds nothing re-sends the same refund number; a
  refund reported done after it was marked FAILED becomes SUCCEEDED, unless
  the merchant has since refunded the room again (then: attention).
"""
from __future__ import annotations

import enum

from channels.base import RefundStatus, TradeStatus
from paycore.core.models import Payment, Refund, RefundState, Status, can_transition

#: channel answer → the payment status it proves (None: proves nothing final)
_TARGET = {TradeStatus.SUCCEEDED: Status.SUCCEEDED, TradeStatus.FAILED: Status.FAILED,
           TradeStatus.CLOSED: Status.CLOSED, TradeStatus.REVERSED: Status.REVERSED,
           TradeStatus.PROCESSING: Status.PROCESSING, TradeStatus.PENDING: None, TradeStatus.NOT_FOUND: None}


def target_of(status: TradeStatus) -> Status | None:
    return _TARGET[status]


class PayVerdict(enum.Enum):
    APPLY = "apply"                       # move to the target (or just record fields)
    IGNORE = "ignore"                     # old news: a final payment told something it already knows
    LATE_SUCCESS = "late_success"         # money arrived for a payment already final without it
    AMOUNT_MISMATCH = "amount_mismatch"   # the provider names another amount: attention, no change


def payment_verdict(p: Payment, status: TradeStatus, reported_amount: int | None) -> PayVerdict:
    target = target_of(status)
    if target is Status.SUCCEEDED and reported_amount is not None and reported_amount != p.amount:
        return PayVerdict.AMOUNT_MISMATCH
    if target is None or target is p.status:
        return PayVerdict.APPLY
    if p.status.final:
        if p.status is Status.SUCCEEDED and target is Status.REVERSED:
            return PayVerdict.APPLY
        if target is Status.SUCCEEDED and p.status in (Status.CLOSED, Status.FAILED, Status.REVERSED):
            if p.late_paid_at is not None:
                return PayVerdict.IGNORE          # already recorded (a duplicate notification)
            if p.status is Status.REVERSED and p.paid_at is not None:
                return PayVerdict.IGNORE          # paid, then reversed: the success is the old news
            return PayVerdict.LATE_SUCCESS
        return PayVerdict.IGNORE
    return PayVerdict.APPLY if can_transition(p.status, target) else PayVerdict.IGNORE


def cancel_outcome(intent: str, status: TradeStatus, retry: bool, *, by_reverse: bool, close_not_found_final: bool,
                   cancel_is_tombstone: bool, expired: bool) -> TradeStatus | None:
    """What a close/reverse answer proves for a payment with ``intent``.

    Returns the status to apply, or None: not proven yet, keep the intent and
    check again. ``expired``: the code died at the provider (expire_at plus the
    channel's grace, or the barcode's give-up time plus grace); past it an
    unconfirmed close/reverse is taken as done — any later money is late money.
    """
    if retry or status in (TradeStatus.PROCESSING, TradeStatus.PENDING):
        proven = None
    elif status is TradeStatus.NOT_FOUND:
        final = cancel_is_tombstone if by_reverse else close_not_found_final
        proven = (TradeStatus.CLOSED if intent == "close" else TradeStatus.REVERSED) if final else None
    elif status in (TradeStatus.CLOSED, TradeStatus.REVERSED):
        proven = TradeStatus.CLOSED if intent == "close" else TradeStatus.REVERSED
    else:   # SUCCEEDED (paid meanwhile; a reverse refused) or FAILED: what the provider holds
        proven = status
    if proven is None and expired:
        return TradeStatus.CLOSED if intent == "close" else TradeStatus.REVERSED
    return proven


class RefundVerdict(enum.Enum):
    IGNORE = "ignore"
    SUCCEED = "succeed"
    FAIL = "fail"
    LATE_SUCCEED = "late_succeed"     # FAILED here, done at the provider: correct the books
    CONFLICT = "conflict"             # ... but the room was refunded again since: attention
    RESEND = "resend"                 # not found (yet): send the same refund number again
    WAIT = "wait"                     # still processing: check again
    EXPIRE = "expire"                 # unknown past the deadline: attention, stop checking


def refund_verdict(p: Payment, r: Refund, status: RefundStatus, *, past_deadline: bool) -> RefundVerdict:
    match status:
        case RefundStatus.SUCCEEDED:
            if r.status is RefundState.PROCESSING:
                return RefundVerdict.SUCCEED
            if r.status is RefundState.FAILED:
                if p.refund_reserved + r.amount <= p.amount:
                    return RefundVerdict.LATE_SUCCEED
                return RefundVerdict.CONFLICT
            return RefundVerdict.IGNORE
        case RefundStatus.FAILED:
            return RefundVerdict.FAIL if r.status is RefundState.PROCESSING else RefundVerdict.IGNORE
        case RefundStatus.NOT_FOUND:
            if r.status is not RefundState.PROCESSING:
                return RefundVerdict.IGNORE
            return RefundVerdict.EXPIRE if past_deadline else RefundVerdict.RESEND
        case RefundStatus.PROCESSING:
            if r.status is not RefundState.PROCESSING:
                return RefundVerdict.IGNORE
            return RefundVerdict.EXPIRE if past_deadline else RefundVerdict.WAIT
    raise AssertionError(status)
