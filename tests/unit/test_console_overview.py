"""The console overview's rates (paycore.http.console.operator.figures): the figures an operator
reads next to Grafana's, from today's per-channel counts."""
from __future__ import annotations

from paycore.http.console.operator import figures


def row(channel: str, total: int, final: int, succeeded: int, recent: int) -> dict:
    return {"channel": channel, "total": total, "final": final, "succeeded": succeeded, "recent": recent,
            "channel_failed": 0}


def test_rates_per_second_and_success_rate_per_channel():
    f = figures([row("alipay", 3000, 2000, 1900, 600), row("wechatpay", 600, 0, 0, 300)], elapsed=3600.0)
    assert f["total"] == 3600
    assert f["per_second"] == "1.00"                 # 3600 payments over the first hour of the day
    assert f["recent_per_second"] == "3.00"          # 900 in the last 5 minutes
    assert f["success"] == {"alipay": "95.0 %", "wechatpay": None}   # none final yet: no rate, not 0 %


def test_the_first_second_of_the_day_does_not_divide_by_zero():
    f = figures([row("unionpay", 5, 5, 4, 5)], elapsed=0.0)
    assert f["per_second"] == "5.00" and f["success"] == {"unionpay": "80.0 %"}


def test_no_payments_today():
    assert figures([], elapsed=100.0) == {"total": 0, "per_second": "0.00", "recent_per_second": "0.00",
                                          "success": {}}
