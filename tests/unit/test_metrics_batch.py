"""The hot path's cheaper metrics: counts gathered and applied later, and many
observations applied in one update per bucket, must export exactly what one
``inc``/``observe`` per event would. These compare the rendered exposition
both ways (they also guard the prometheus_client internals observe_many uses)."""
from __future__ import annotations

import math
import random

from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from paycore.metrics import Metrics, observe_many
from paycore.outbox.relay import PartitionMemo

BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)


def _hist(labels=()) -> tuple[CollectorRegistry, Histogram]:
    reg = CollectorRegistry()
    return reg, Histogram("x_seconds", "x", list(labels), buckets=BUCKETS, registry=reg)


def _exposition(reg: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(reg).decode().splitlines() if "_created" not in line]


def test_observe_many_exports_what_one_observe_each_would():
    rnd = random.Random(7)
    # on the bounds themselves (a bound is inclusive), between them, above the last, zero
    amounts = list(BUCKETS) + [0.0, 31.0, 1e9] + [rnd.uniform(0, 12) for _ in range(500)]
    one, h1 = _hist()
    for a in amounts:
        h1.observe(a)
    many, h2 = _hist()
    observe_many(h2, amounts[:200])
    observe_many(h2, amounts[200:])
    observe_many(h2, [])
    # buckets and count exactly; the sum up to float addition order
    plain = [[line for line in _exposition(r) if not line.startswith("x_seconds_sum")] for r in (one, many)]
    assert plain[0] == plain[1]
    sums = [float(next(line for line in _exposition(r) if line.startswith("x_seconds_sum")).split()[1])
            for r in (one, many)]
    assert math.isclose(sums[0], sums[1], rel_tol=1e-12)
    assert 'x_seconds_bucket{le="0.0005"} 2.0' in _exposition(many)      # 0.0005 itself and 0.0
    assert 'x_seconds_count 518.0' in _exposition(many)


def test_counts_and_times_appear_at_flush_and_equal_direct_updates():
    direct, gathered = Metrics(), Metrics()
    for route, status, dt in [("/v1/payments", "201", 0.003), ("/v1/payments", "201", 0.7),
                              ("/v1/payments/{id}", "200", 0.0005), ("/v1/payments", "400", 12.0)]:
        direct.http_requests.labels(route, "POST", status).inc()
        direct.http_latency.labels(route).observe(dt)
        gathered.count(gathered.http_requests, route, "POST", status)
        gathered.time(gathered.http_latency, dt, route)
    direct.channel_calls.labels("wechatpay", "pay", "ok").observe(0.02)
    gathered.observe_channel_call("wechatpay", "pay", "ok", 0.02)

    def text(m: Metrics) -> list[str]:
        return [line for line in generate_latest(m.registry).decode().splitlines()
                if line.startswith(("paycore_http_", "paycore_channel_call_seconds")) and "_created" not in line]
    assert not any(line.startswith("paycore_http_requests_total{") for line in text(gathered))   # not yet applied
    gathered.flush()
    assert text(gathered) == text(direct)
    assert 'paycore_http_requests_total{method="POST",route="/v1/payments",status="201"} 2.0' in text(gathered)
    gathered.flush()   # nothing gathered since: nothing changes
    assert text(gathered) == text(direct)
    # a /metrics answer applies what this process gathered first
    gathered.count(gathered.payments_created, "alipay", "qr")
    assert b'paycore_payments_created_total{channel="alipay",method="qr"} 1.0' in gathered.render()[0]


def test_partition_memo_answers_as_the_partitioner_and_forgets_when_the_topic_changes():
    memo = PartitionMemo(size=100)
    p12, p7 = list(range(12)), list(range(7))
    keys = [f"pay_{i:024x}".encode() for i in range(60)]
    for key in keys + keys:   # each payment's second event is remembered
        assert memo.of(12, key) == DefaultPartitioner()(key, p12, p12)
    assert len(memo.known) == 60 and memo.count == 12
    assert len({memo.of(12, k) for k in keys}) > 1   # keys spread over partitions
    memo.known[keys[0]] = 99   # a remembered answer is what it answers, while the topic is unchanged
    assert memo.of(12, keys[0]) == 99
    for key in keys:   # the topic now has 7 partitions: what was remembered for 12 is not used
        assert memo.of(7, key) == DefaultPartitioner()(key, p7, p7)
    assert memo.count == 7 and len(memo.known) == 60
    for key in [f"pay_x{i}".encode() for i in range(150)]:   # bounded: cleared at size
        memo.of(7, key)
    assert len(memo.known) <= 100
