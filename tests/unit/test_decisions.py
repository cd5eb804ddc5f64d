"""The money decisions the engine, recovery and the model check share (paycore.core.decisions)."""
from __future__ import annotations

from datetime import datetime, timezone

from channels.base import Method, RefundStatus, TradeStatus
from paycore.core import attention
from paycore.core.decisions import (PayVerdict, RefundVerdict, cancel_outcome, payment_verdict, refund_verdict)
from paycore.core.models import Payment, Refund, RefundState, Status

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def pay(status: Status, **kw) -> Payment:
    return Payment(id="pay_1", merchant_id="m", merchant_order_no="o", fingerprint="f", amount=1000, currency="CNY",
                   method=Method.QR, channel="alipay", status=status, expire_at=T, created_at=T, updated_at=T, **kw)


def test_late_money_is_never_ignored_and_never_counted_twice():
    assert payment_verdict(pay(Status.CLOSED), TradeStatus.SUCCEEDED, 1000) is PayVerdict.LATE_SUCCESS
    assert payment_verdict(pay(Status.FAILED), TradeStatus.SUCCEEDED, None) is PayVerdict.LATE_SUCCESS
    assert payment_verdict(pay(Status.CLOSED, late_paid_at=T), TradeStatus.SUCCEEDED, 1000) is PayVerdict.IGNORE
    # paid, then reversed: an old success notification is old news
    assert payment_verdict(pay(Status.REVERSED, paid_at=T), TradeStatus.SUCCEEDED, 1000) is PayVerdict.IGNORE


def test_an_amount_that_differs_never_moves_money():
    assert payment_verdict(pay(Status.PROCESSING), TradeStatus.SUCCEEDED, 999) is PayVerdict.AMOUNT_MISMATCH
    assert payment_verdict(pay(Status.PROCESSING), TradeStatus.SUCCEEDED, 1000) is PayVerdict.APPLY


def test_not_found_ends_a_cancel_only_where_it_is_proof():
    kw = dict(close_not_found_final=False, cancel_is_tombstone=True, expired=False)
    assert cancel_outcome("close", TradeStatus.NOT_FOUND, False, by_reverse=False, **kw) is None
    assert cancel_outcome("reverse", TradeStatus.NOT_FOUND, False, by_reverse=True, **kw) is TradeStatus.REVERSED
    kw["cancel_is_tombstone"] = False
    assert cancel_outcome("reverse", TradeStatus.NOT_FOUND, False, by_reverse=True, **kw) is None
    kw["expired"] = True     # the code died at the provider: any later money is late money
    assert cancel_outcome("close", TradeStatus.NOT_FOUND, False, by_reverse=False, **kw) is TradeStatus.CLOSED
    assert cancel_outcome("close", TradeStatus.SUCCEEDED, False, by_reverse=False, **kw) is TradeStatus.SUCCEEDED
    assert cancel_outcome("reverse", TradeStatus.PROCESSING, True, by_reverse=True, **kw) is TradeStatus.REVERSED


def test_refund_not_found_resends_and_late_success_corrects_the_books():
    p = pay(Status.SUCCEEDED, refund_reserved=1000)
    r = Refund(id="rfd_1", payment_id="pay_1", merchant_id="m", refund_no="r", fingerprint="", amount=1000,
               status=RefundState.PROCESSING, created_at=T, updated_at=T)
    assert refund_verdict(p, r, RefundStatus.NOT_FOUND, past_deadline=False) is RefundVerdict.RESEND
    assert refund_verdict(p, r, RefundStatus.NOT_FOUND, past_deadline=True) is RefundVerdict.EXPIRE
    failed = Refund(id="rfd_1", payment_id="pay_1", merchant_id="m", refund_no="r", fingerprint="", amount=1000,
                    status=RefundState.FAILED, created_at=T, updated_at=T)
    assert refund_verdict(pay(Status.SUCCEEDED), failed, RefundStatus.SUCCEEDED,
                          past_deadline=False) is RefundVerdict.LATE_SUCCEED
    # the merchant has refunded the room again meanwhile: an operator decides
    assert refund_verdict(p, failed, RefundStatus.SUCCEEDED, past_deadline=False) is RefundVerdict.CONFLICT


def test_every_attention_kind_has_actions():
    assert set(attention.ACTIONS) == set(attention.KINDS)
    assert all("acknowledge" in a for a in attention.ACTIONS.values())
