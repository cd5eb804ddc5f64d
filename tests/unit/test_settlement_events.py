"""Which journal events move money for the settlement totals, and on which day."""
from __future__ import annotations

import logging
from datetime import date

from paycore.outbox.settlement import SettlementMetrics, apply, movement


def event(etype: str, *, paid_at: str | None = "2025-01-31T10:00:00+00:00", at: str = "2025-01-31T23:30:00+00:00",
          refund: int | None = None) -> dict:
    ev = {"event_id": "evt_1", "type": etype, "occurred_at": at,
          "payment": {"id": "pay_1", "merchant_id": "m_demo", "channel": "alipay", "amount": 1234, "paid_at": paid_at}}
    if refund is not None:
        ev["refund"] = {"id": "rfd_1", "amount": refund}
    return ev


def test_money_taken_and_returned():
    key = ("m_demo", "alipay", date(2025, 1, 31))
    assert movement(event("payment.succeeded")) == (key, "payments", 1234)
    assert movement(event("payment.reversed")) == (key, "reversed", 1234)
    assert movement(event("refund.succeeded", refund=200)) == (key, "refunds", 200)


def test_events_that_move_no_money():
    assert movement(event("payment.reversed", paid_at=None)) is None   # reversed before it was ever paid
    for etype in ("payment.created", "payment.processing", "payment.failed", "payment.closed", "refund.created",
                  "refund.failed"):
        assert movement(event(etype, refund=1)) is None, etype


def test_the_day_is_the_utc_day_of_the_event():
    (_, _, day), _, _ = movement(event("payment.succeeded", at="2025-02-01T07:30:00+08:00"))
    assert day == date(2025, 1, 31)


async def test_malformed_events_are_skipped_without_touching_the_database(caplog):
    caplog.set_level(logging.WARNING, "paycore.consumer")
    assert await apply(None, [b"not json", b"[1]", b'{"type": "payment.succeeded"}'], SettlementMetrics()) == (0, 0)
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 3
