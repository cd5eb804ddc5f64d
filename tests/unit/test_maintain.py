"""The retention job's date arithmetic and the peak check's sizing (no database)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from loadtest.peak import cpu_table, plan, saturated
from paycore.bizday import Calendar
from paycore.config import DataConfig
from paycore.ops.maintain import TABLES, ahead, days_between, months_back, parse_bound, retention_cutoff

UTC = timezone.utc
EVENTS, WEBHOOKS, LINES = TABLES


def test_partition_bounds_are_read_from_the_catalog_text():
    lo, hi = parse_bound("FOR VALUES FROM ('2026-12-02 00:00:00+00') TO ('2026-12-03 00:00:00+00')")
    assert (lo, hi) == (datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC))
    with pytest.raises(ValueError):
        parse_bound("DEFAULT")


@pytest.mark.parametrize("at, months, expected", [
    (datetime(2026, 3, 31, 13, tzinfo=UTC), 3, datetime(2025, 12, 1, tzinfo=UTC)),
    (datetime(2026, 1, 15, tzinfo=UTC), 25, datetime(2023, 12, 1, tzinfo=UTC)),
    (datetime(2026, 11, 15, tzinfo=UTC), -2, datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_months_back_lands_on_the_first_of_a_month(at, months, expected):
    assert months_back(at, months) == expected


def test_cutoffs_and_horizons_follow_the_config():
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)
    cfg = DataConfig(events_days=35, webhooks_months=3, settlement_lines_months=25, events_ahead_days=14,
                     ahead_months=2)
    assert retention_cutoff(EVENTS, cfg, now) == datetime(2026, 10, 28, 10, tzinfo=UTC)
    assert retention_cutoff(WEBHOOKS, cfg, now) == datetime(2026, 9, 1, tzinfo=UTC)
    assert retention_cutoff(LINES, cfg, now) == datetime(2024, 11, 1, tzinfo=UTC)
    assert ahead(EVENTS, cfg, now) == datetime(2026, 12, 16, 10, tzinfo=UTC)
    assert ahead(WEBHOOKS, cfg, now) == datetime(2027, 2, 1, tzinfo=UTC)


def test_a_utc_day_touches_two_business_days_in_shanghai():
    cal = Calendar.of("Asia/Shanghai")
    lo, hi = datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    assert days_between(cal, lo, hi) == [date(2026, 12, 2), date(2026, 12, 3)]
    assert days_between(Calendar.of("UTC"), lo, hi) == [date(2026, 12, 2)]


def test_the_peak_check_sizes_workers_and_locust_for_the_rate_and_the_machine():
    full = plan(1.0, 16)
    assert full["target_tps"] == 5000 and full["workers"] == 8 and full["locust_processes"] == 4
    tenth = plan(0.1, 2)
    assert tenth["target_tps"] == 500 and tenth["workers"] == 1 and tenth["locust_processes"] == 1
    assert plan(0.1, 16)["workers"] == 2
    # from four workers on the relay is a process of its own (no worker carries it beside its API share)
    assert full["relay"] == "separate" and tenth["relay"] == "workers" and plan(0.1, 16)["relay"] == "workers"
    assert plan(1.0, 16, relay="workers")["relay"] == "workers" and plan(0.1, 2, relay="separate")["relay"] == "separate"


def test_the_peak_check_sums_the_stacks_cpu_and_says_when_the_machine_ran_out():
    cpu = cpu_table({"paycore": 46.3, "postgres": 15.0, "simulators": 27.8, "broker": 0.4, "locust": 16.3},
                    wall=60.7, payments=27086)
    assert cpu["paycore"] == {"cpu_s": 46.3, "cores": 0.76, "us_per_payment": 1709}
    assert cpu["all"] == {"cpu_s": 105.8, "cores": 1.74, "us_per_payment": 3906}
    assert saturated(cpu, 2) and not saturated(cpu, 16)
    assert cpu_table({"paycore": 1.0}, wall=10.0, payments=0)["all"]["us_per_payment"] is None
