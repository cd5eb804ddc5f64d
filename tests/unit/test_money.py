"""channels.money: the one fen ↔ yuan conversion the yuan-speaking channels share."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels import money
from channels.alipay import transformers as alipay
from channels.ecny import transformers as ecny
from channels.money import AmountTypeError, fen_to_yuan, yuan_to_fen
from channels.wxv3 import transformers as wxv3


@pytest.mark.parametrize("fen, yuan", [(0, "0.00"), (1, "0.01"), (10, "0.10"), (99, "0.99"), (100, "1.00"),
                                       (1234, "12.34"), (10**12, "10000000000.00")])
def test_fen_to_yuan_always_two_decimals(fen: int, yuan: str) -> None:
    assert fen_to_yuan(fen) == yuan
    assert yuan_to_fen(yuan) == fen


def test_negative_fen_only_where_allowed() -> None:
    with pytest.raises(ValueError):
        fen_to_yuan(-1)
    assert fen_to_yuan(-5, allow_negative=True) == "-0.05"
    assert fen_to_yuan(-1234, allow_negative=True) == "-12.34"


@pytest.mark.parametrize("bad", [1.5, True, False, "100", None, 1.0])
def test_fen_must_be_an_int_and_the_error_is_both_type_and_value(bad: object) -> None:
    for exc in (AmountTypeError, TypeError, ValueError):
        with pytest.raises(exc):
            fen_to_yuan(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, fen", [("0", 0), ("0.1", 10), ("0.01", 1), ("12", 1200), ("12.3", 1230),
                                       ("12.34", 1234), ("10000000000.00", 10**12)])
def test_yuan_to_fen_accepts_one_or_two_decimals(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("bad", ["", " ", "-1.00", "+1.00", "1.234", "1e2", "1E2", " 1.00", "1.00 ", "01.00",
                                 "00.50", "1.", ".5", "1,00", "1 .00", "１.00", "NaN", "inf", "¥1", "1.2.3",
                                 "0x10", "1_000", "12.34\n"])
def test_yuan_to_fen_is_strict_by_default(bad: str) -> None:
    with pytest.raises(ValueError):
        yuan_to_fen(bad)


@pytest.mark.parametrize("bad", [None, 12, 12.5, b"12.34"])
def test_yuan_must_be_a_str(bad: object) -> None:
    for kwargs in ({}, {"padded": True}):
        for exc in (AmountTypeError, TypeError, ValueError):
            with pytest.raises(exc):
                yuan_to_fen(bad, **kwargs)  # type: ignore[arg-type]


def test_allow_negative_takes_a_leading_minus_only() -> None:
    assert yuan_to_fen("-10.05", allow_negative=True) == -1005
    assert yuan_to_fen("-0.01", allow_negative=True) == -1
    assert yuan_to_fen("10.05", allow_negative=True) == 1005
    for bad in ("--1", "+1", "- 1", "1-"):
        with pytest.raises(ValueError):
            yuan_to_fen(bad, allow_negative=True)


@pytest.mark.parametrize("text, fen", [(" 7.00 ", 700), ("00.50", 50), ("\t007.5\n", 750), ("0", 0)])
def test_padded_tolerates_blanks_around_and_zeros_in_front(text: str, fen: int) -> None:
    assert yuan_to_fen(text, padded=True) == fen
    with pytest.raises(ValueError):
        yuan_to_fen(text.strip() + " ", padded=False)


@pytest.mark.parametrize("bad", ["", "1 .00", "1.234", "１.00", "1e3", ".5", "1.", "-1.00"])
def test_padded_is_otherwise_as_strict(bad: str) -> None:
    with pytest.raises(ValueError):
        yuan_to_fen(bad, padded=True)


@given(st.integers(min_value=-10**15, max_value=10**15), st.booleans())
def test_round_trip(fen: int, padded: bool) -> None:
    assert yuan_to_fen(fen_to_yuan(fen, allow_negative=True), allow_negative=True, padded=padded) == fen


def test_channels_use_the_shared_conversion() -> None:
    assert alipay.fen_to_yuan is money.fen_to_yuan
    assert ecny.fen_to_yuan is money.fen_to_yuan and ecny.yuan_to_fen is money.yuan_to_fen
    # alipay's statement and wxv3's bill are padded; wxv3 also keeps the sign
    assert alipay.yuan_to_fen(" 00.50 ") == 50 and alipay.yuan_to_fen("-1", allow_negative=True) == -100
    with pytest.raises(ValueError):
        alipay.yuan_to_fen("-1")
    assert wxv3.yuan_to_fen(" -0.5 ") == -50 and wxv3.fen_to_yuan(-5) == "-0.05"
