"""Fees: the rule (rate, fixed part, minimum, maximum), half-up rounding to the fen on edge amounts,
which rule applies when rules change, and the business day's bounds around Beijing midnight."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from paycore.bizday import Calendar, parse_cutoff
from paycore.core.fees import (FeeRule, compute_fee, format_rate, half_up_div, parse_rate, pick_rule,
                               refund_fee)

UTC = timezone.utc


@pytest.mark.parametrize("amount, ppm, fee", [
    (1, 3800, 0),            # 0.0038 fen
    (131, 3800, 0),          # 0.4978 fen: below the half
    (132, 3800, 1),          # 0.5016 fen: above the half
    (125, 4000, 1),          # 0.5 fen exactly: half up
    (375, 4000, 2),          # 1.5 fen exactly: half up (not to even)
    (625, 4000, 3),          # 2.5 fen exactly: half up (not to even)
    (124, 4000, 0),          # 0.496 fen
    (10000, 3800, 38),       # 100 yuan at 0.38 %
    (12345, 3800, 47),       # 46.911 fen
    (10_000_000_00, 6000, 6_000_000),    # 10 million yuan at 0.6 %
    (99, 1_000_000, 99),     # 100 %
    (7, 0, 0),
])
def test_percentage_rounds_to_the_fen_half_up(amount, ppm, fee):
    assert compute_fee(amount, ppm) == fee


def test_fixed_part_minimum_and_maximum():
    assert compute_fee(10000, 3800, fixed=10) == 48
    assert compute_fee(100, 3800, min_fee=5) == 5                 # 0.38 fen → the minimum
    assert compute_fee(10_000_00, 3800, max_fee=2500) == 2500     # 38 yuan → capped at 25
    assert compute_fee(3, 0, fixed=10) == 3                       # never more than the payment
    assert compute_fee(10000, 3800, fixed=10, min_fee=60, max_fee=100) == 60


@given(st.integers(0, 10**12), st.integers(0, 10**6))
def test_half_up_matches_exact_rational_arithmetic(amount, ppm):
    exact = Fraction(amount * ppm, 10**6)
    assert compute_fee(amount, ppm) == min(int(exact + Fraction(1, 2)), amount)
    assert half_up_div(amount * ppm, 10**6) == int(exact + Fraction(1, 2))


@given(st.integers(1, 10**9), st.integers(0, 10**6), st.lists(st.integers(1, 10**9), min_size=1, max_size=6))
def test_refund_shares_of_the_fee_add_up_to_the_fee(amount, fee_cap, parts):
    fee = min(fee_cap, amount)
    refunded, back = 0, 0
    for part in parts:
        part = min(part, amount - refunded)
        if part == 0:
            break
        share = refund_fee(fee, amount, refunded, refunded + part)
        assert share >= 0
        back += share
        refunded += part
    if refunded == amount:
        assert back == fee
    assert back <= fee


@pytest.mark.parametrize("text, ppm", [("0.38%", 3800), ("38bp", 3800), ("3.8‰", 3800), ("3.8permille", 3800),
                                       ("0.6%", 6000), ("0%", 0), ("100%", 1_000_000), ("0.0001%", 1)])
def test_rates(text, ppm):
    assert parse_rate(text) == ppm
    assert parse_rate(format_rate(ppm)) == ppm


@pytest.mark.parametrize("text", ["0.38", "abc%", "0.00001%", "101%", "-1%", "1e3%", "0.38 %%"])
def test_bad_rates_are_refused(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def rule(channel="*", method="*", ppm=3800, start="2025-01-01T00:00:00+08:00", **kw):
    return FeeRule("m1", channel, method, ppm, kw.get("fixed", 0), kw.get("min_fee"), kw.get("max_fee"),
                   datetime.fromisoformat(start))


def test_a_rule_change_applies_from_its_instant_and_never_before():
    old, new = rule(ppm=3800), rule(ppm=6000, start="2025-03-01T00:00:00+08:00")
    rules = [old, new]
    before = datetime(2025, 2, 28, 15, 59, 59, 999999, UTC)    # 23:59:59.999999 in Beijing
    assert pick_rule(rules, "m1", "alipay", "qr", before) is old
    assert pick_rule(rules, "m1", "alipay", "qr", before + timedelta(microseconds=1)) is new
    assert pick_rule(rules, "m1", "alipay", "qr", datetime(2024, 12, 31, tzinfo=UTC)) is None   # no rule yet
    assert pick_rule(rules, "m2", "alipay", "qr", before) is None                               # other merchant


def test_the_most_specific_rule_wins_then_the_latest():
    general = rule(ppm=6000, start="2025-02-01T00:00:00+08:00")
    channel = rule(channel="wechatpay", ppm=3800)
    exact = rule(channel="wechatpay", method="barcode", ppm=2000)
    method = rule(method="barcode", ppm=2500, start="2025-02-02T00:00:00+08:00")
    rules = [general, channel, exact, method]
    at = datetime(2025, 3, 1, tzinfo=UTC)
    assert pick_rule(rules, "m1", "wechatpay", "barcode", at) is exact
    assert pick_rule(rules, "m1", "wechatpay", "qr", at) is channel
    assert pick_rule(rules, "m1", "alipay", "barcode", at) is method
    assert pick_rule(rules, "m1", "alipay", "qr", at) is general


def test_business_day_bounds_around_beijing_midnight():
    cal = Calendar.of("Asia/Shanghai", parse_cutoff("02:00"))
    start, end = cal.bounds(date(2025, 2, 1))
    assert start == datetime(2025, 1, 31, 16, tzinfo=UTC) and end == datetime(2025, 2, 1, 16, tzinfo=UTC)
    assert cal.day_of(start - timedelta(microseconds=1)) == date(2025, 1, 31)
    assert cal.day_of(start) == date(2025, 2, 1)
    assert cal.closes_at(date(2025, 2, 1)) == datetime(2025, 2, 1, 18, tzinfo=UTC)   # 02:00 the next morning
    with pytest.raises(ValueError):
        cal.day_of(datetime(2025, 2, 1))   # naive: no business day
    for bad in ("2", "25:99", "ab:cd", "-1:00"):
        with pytest.raises(ValueError):
            parse_cutoff(bad)
