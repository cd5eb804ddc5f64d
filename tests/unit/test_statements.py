"""The statement file (parsed back as a spreadsheet program would), the lines cursor, and the
simulators' statements counting China-time days."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone

import pytest

from paycore.outbox.statements import (CSV_COLUMNS, decode_cursor, encode_cursor, render_csv, sha256_hex,
                                       totals_of)
from simulators.kit import OrderState, Scenario, SimOrder, SimSettings, SimState

UTC = timezone.utc


def line(kind, ident, amount, fee, at, channel="alipay", original=None):
    return {"event_id": f"evt_{ident}", "kind": kind, "id": ident, "payment_id": "pay_1",
            "merchant_order_no": "订单-1", "channel": channel, "method": "qr", "amount": amount, "fee": fee,
            "net": amount - fee, "occurred_at": at, "original_date": original}


LINES = [
    line("payment", "pay_1", 12345, 47, datetime(2025, 2, 1, 1, 0, tzinfo=UTC)),
    line("refund", "rfd_1", -4000, -15, datetime(2025, 2, 1, 2, 0, tzinfo=UTC)),
    line("payment", "pay_2", 10000, 38, datetime(2025, 2, 1, 3, 0, tzinfo=UTC), channel="wechatpay"),
    line("adjustment", "rfd_0", -500, -2, datetime(2025, 2, 1, 4, 0, tzinfo=UTC), original=date(2025, 1, 31)),
]


def test_the_csv_opens_with_the_right_columns_and_adds_up():
    data = render_csv(LINES)
    assert data.startswith(b"\xef\xbb\xbf")                       # UTF-8 BOM
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["kind"] for r in rows] == ["payment", "refund", "payment", "adjustment", "total"]
    assert rows[0]["merchant_order_no"] == "订单-1" and rows[0]["occurred_at"] == "2025-02-01T01:00:00Z"
    assert rows[3]["original_date"] == "2025-01-31" and rows[0]["original_date"] == ""
    body, total = rows[:-1], rows[-1]
    assert total["id"] == "4"
    for col in ("amount", "fee", "net"):
        assert int(total[col]) == sum(int(r[col]) for r in body)
    assert all(int(r["net"]) == int(r["amount"]) - int(r["fee"]) for r in rows)
    assert b"\r\n" in data and sha256_hex(data) == sha256_hex(render_csv(LINES))   # same lines, same bytes


def test_totals_of_a_day():
    s = totals_of(LINES).summary("m1", date(2025, 2, 1), "OPEN", None)
    assert (s["count"], s["gross"], s["refunds"], s["fees"], s["adjustments"]) == (4, 22345, 4000, 70, -498)
    assert s["net"] == s["gross"] - s["refunds"] - s["fees"] + s["adjustments"] == sum(x["net"] for x in LINES)
    assert sum(c["net"] for c in s["by_channel"]) == s["net"]
    assert [c["channel"] for c in s["by_channel"]] == ["alipay", "wechatpay"]


def test_cursor_round_trip_and_refusals():
    at = datetime(2025, 2, 1, 1, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "evt_abc")) == (at, "evt_abc")
    for bad in ("", "x", "bm90IGEgY3Vyc29y", "_-_-", encode_cursor(at, "pay_1")):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_simulated_provider_statements_count_days_from_beijing_midnight():
    state = SimState(SimSettings(name="alipay"))
    for no, paid in (("before", datetime(2025, 1, 31, 15, 59, 59, tzinfo=UTC)),
                     ("after", datetime(2025, 1, 31, 16, 0, 0, tzinfo=UTC))):
        state.orders[no] = SimOrder(no, 100, "qr", None, f"ch-{no}", Scenario(0), state=OrderState.SUCCESS,
                                    paid_at=paid)
    assert [o.out_trade_no for _, o, _ in state.statement_rows("2025-01-31")] == ["before"]
    assert [o.out_trade_no for _, o, _ in state.statement_rows("2025-02-01")] == ["after"]
