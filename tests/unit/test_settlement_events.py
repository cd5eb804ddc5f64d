"""Which journal events become settlement lines, signed how, with which fee, on which business day."""
from __future__ import annotations

import logging
from datetime import date

import pytest

from paycore.bizday import Calendar
from paycore.config import SettlementConfig
from paycore.outbox.settlement import SettlementMetrics, apply, line_of, next_open_day

CAL = Calendar.of("Asia/Shanghai")
SETTINGS = SettlementConfig(fee_refund={"bestpay": "kept"})


def event(etype: str, *, paid_at: str | None = "2025-01-31T10:00:00+00:00", at: str = "2025-01-31T10:30:00+00:00",
          refund: int | None = None, refunded: int = 0, fee: int | None = 47, channel: str = "alipay") -> dict:
    ev = {"event_id": "evt_1", "type": etype, "occurred_at": at,
          "payment": {"id": "pay_1", "merchant_id": "m_demo", "merchant_order_no": "o-1", "channel": channel,
                      "method": "barcode", "amount": 12345, "paid_at": paid_at, "fee": fee,
                      "refunded_amount": refunded}}
    if refund is not None:
        ev["refund"] = {"id": "rfd_1", "amount": refund}
    return ev


def test_a_payment_line_carries_the_fee_fixed_on_the_payment():
    ln = line_of(event("payment.succeeded"), CAL, SETTINGS)
    assert (ln.kind, ln.id, ln.amount, ln.fee, ln.day) == ("payment", "pay_1", 12345, 47, date(2025, 1, 31))
    assert line_of(event("payment.succeeded", fee=None), CAL, SETTINGS).fee == 0   # events from before fees


def test_a_reversal_returns_the_money_and_the_whole_fee():
    ln = line_of(event("payment.reversed"), CAL, SETTINGS)
    assert (ln.kind, ln.id, ln.amount, ln.fee) == ("refund", "pay_1", -12345, -47)


def test_refunds_return_the_fee_in_proportion_and_the_shares_add_up_to_the_fee():
    # 12345 fen with a fee of 47, refunded in three parts: the fee given back adds up to 47 exactly
    parts, refunded, back = (4000, 4000, 4345), 0, 0
    for part in parts:
        refunded += part
        ln = line_of(event("refund.succeeded", refund=part, refunded=refunded), CAL, SETTINGS)
        assert ln.kind == "refund" and ln.id == "rfd_1" and ln.amount == -part
        back -= ln.fee
    assert back == 47


def test_a_channel_that_keeps_its_fee_returns_none_of_it():
    ln = line_of(event("refund.succeeded", refund=100, refunded=100, channel="bestpay"), CAL, SETTINGS)
    assert (ln.amount, ln.fee) == (-100, 0)


def test_events_that_move_no_money():
    assert line_of(event("payment.reversed", paid_at=None), CAL, SETTINGS) is None   # never paid
    for etype in ("payment.created", "payment.processing", "payment.failed", "payment.closed", "refund.created",
                  "refund.failed", "settlement.closed"):
        assert line_of(event(etype, refund=1, refunded=1), CAL, SETTINGS) is None, etype


@pytest.mark.parametrize("at, day", [
    ("2025-01-31T15:59:59.999999+00:00", date(2025, 1, 31)),   # 23:59:59.999999 in Beijing
    ("2025-01-31T16:00:00+00:00", date(2025, 2, 1)),           # Beijing midnight
    ("2025-02-01T07:59:59+08:00", date(2025, 2, 1)),
    ("2025-01-31T23:30:00Z", date(2025, 2, 1)),                # a UTC evening is the next Beijing morning
])
def test_the_day_is_the_business_day_in_beijing(at, day):
    assert line_of(event("payment.succeeded", at=at), CAL, SETTINGS).day == day


def test_the_business_day_follows_the_configured_zone():
    utc = Calendar.of("UTC")
    assert line_of(event("payment.succeeded", at="2025-01-31T23:30:00Z"), utc, SETTINGS).day == date(2025, 1, 31)


def test_a_late_event_goes_to_the_next_day_that_is_not_closed():
    closed = {date(2025, 1, 31), date(2025, 2, 1)}
    assert next_open_day(date(2025, 1, 31), closed) == date(2025, 2, 2)
    assert next_open_day(date(2025, 2, 5), closed) == date(2025, 2, 6)


async def test_malformed_events_are_skipped_without_touching_the_database(caplog):
    caplog.set_level(logging.WARNING, "paycore.consumer")
    bad = [b"not json", b"[1]", b'{"type": "payment.succeeded"}',
           b'{"type": "refund.succeeded", "event_id": "evt_2", "occurred_at": "2025-01-31T10:00:00Z", "payment": '
           b'{"amount": 100, "refunded_amount": 500, "channel": "alipay"}, "refund": {"amount": 50}}']
    assert await apply(None, bad, SettlementMetrics(), CAL, SETTINGS) == (0, 0)
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 4
