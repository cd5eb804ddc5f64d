"""The providers' status tables, written once per normalised status with channels.base.by_status."""
from __future__ import annotations

import pytest

from channels.base import RefundStatus, TradeStatus, by_status
from channels.ecny import transformers as ecny
from channels.qqwallet import transformers as qq
from channels.wxv3 import transformers as wxv3


def test_each_word_maps_to_its_status():
    t = by_status(TradeStatus, pending="NOTPAY", succeeded=("SUCCESS", "REFUND"))
    assert t == {"NOTPAY": TradeStatus.PENDING, "SUCCESS": TradeStatus.SUCCEEDED, "REFUND": TradeStatus.SUCCEEDED}


def test_a_word_given_twice_or_an_unknown_status_is_refused():
    with pytest.raises(AssertionError):
        by_status(RefundStatus, succeeded="SUCCESS", failed="SUCCESS")
    with pytest.raises(KeyError):
        by_status(RefundStatus, refunded="X")


def test_provider_tables_keep_their_meaning():
    assert wxv3.TRADE_STATES["ACCEPTED"] is TradeStatus.PROCESSING and wxv3.TRADE_STATES["REFUND"] is TradeStatus.SUCCEEDED
    assert wxv3.REFUND_STATES["ABNORMAL"] is RefundStatus.FAILED
    assert qq.REFUND_STATES["NOTSURE"] is RefundStatus.PROCESSING and qq.REFUND_STATES["CHANGE"] is RefundStatus.FAILED
    assert ecny.TRADE_STATES["REVOKED"] is TradeStatus.REVERSED and len(ecny.TRADE_STATES) == 7
