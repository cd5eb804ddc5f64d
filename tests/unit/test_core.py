"""Pure parts of the core: state machine, routing, breaker, signatures, secrets, config."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest

from channels.base import Method
from paycore.metrics import Metrics
from paycore import config as config_mod
from paycore.merchants.auth import RateLimiter, SecretBox, canonical, sign
from paycore.core.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from paycore.errors import IllegalTransition, InvalidRequest, RateLimited, UnknownAuthCode
from paycore.core.models import Payment, Refund, RefundState, Status, can_transition, new_id
from paycore.core.routing import Router
from channels.secrets import Secret

LEGAL = {
    (Status.PENDING, Status.PROCESSING), (Status.PENDING, Status.SUCCEEDED), (Status.PENDING, Status.FAILED),
    (Status.PENDING, Status.CLOSED), (Status.PROCESSING, Status.SUCCEEDED), (Status.PROCESSING, Status.FAILED),
    (Status.PROCESSING, Status.REVERSED), (Status.PROCESSING, Status.CLOSED), (Status.SUCCEEDED, Status.REVERSED),
}


def _payment(status: Status) -> Payment:
    now = datetime.now(timezone.utc)
    return Payment(id=new_id("pay"), merchant_id="m", merchant_order_no="o", fingerprint="f", amount=100,
                   currency="CNY", method=Method.BARCODE, channel="wechatpay", status=status,
                   expire_at=now + timedelta(minutes=5), created_at=now, updated_at=now, next_check_at=now)


@pytest.mark.parametrize("src,dst", list(itertools.product(Status, Status)))
def test_state_machine_allows_only_the_transitions_of_the_contract(src, dst):
    assert can_transition(src, dst) == ((src, dst) in LEGAL)
    p = _payment(src)
    if (src, dst) in LEGAL:
        etype = p.transition(dst, datetime.now(timezone.utc))
        assert p.status is dst and p.seq == 2 and etype == f"payment.{dst.value.lower()}"
        assert (p.next_check_at is None) == dst.final
    else:
        with pytest.raises(IllegalTransition):
            p.transition(dst, datetime.now(timezone.utc))
        assert p.status is src and p.seq == 1


def test_refund_transitions():
    now = datetime.now(timezone.utc)
    r = Refund(id="rfd_1", payment_id="pay_1", merchant_id="m", refund_no="r", fingerprint="f", amount=1,
               status=RefundState.PROCESSING, created_at=now, updated_at=now)
    assert r.transition(RefundState.SUCCEEDED, now) == "refund.succeeded"
    with pytest.raises(IllegalTransition):
        r.transition(RefundState.FAILED, now)


def test_a_copy_equals_the_payment_field_for_field_and_changing_it_leaves_the_original():
    import dataclasses
    p = _payment(Status.PROCESSING)
    p.pay_params, p.metadata, p.fee, p.intent = {"k": 1}, {"m": "v"}, 3, "close"
    c = p.copy()
    assert c == p and c is not p and type(c) is Payment
    assert all(getattr(c, f.name) is getattr(p, f.name) for f in dataclasses.fields(Payment))   # shallow, as replace
    c.transition(Status.SUCCEEDED, datetime.now(timezone.utc))
    assert p.status is Status.PROCESSING and p.seq == 1 and c.seq == 2


def test_ids_are_prefixed_time_ordered_and_unique():
    ids = [new_id("pay") for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(i) == 28 and i.startswith("pay_") and i[4:].isalnum() and i[4:].islower() for i in ids)
    # 13 characters of randomness from base32's alphabet, all 32 of them in use
    assert set("".join(i[15:] for i in ids)) == set("abcdefghijklmnopqrstuvwxyz234567")
    later = new_id("pay")
    time.sleep(0.002)
    assert new_id("pay")[4:15] >= later[4:15]


def test_router_uses_the_prefix_table_from_config():
    cfg = config_mod.load(env={})
    router = Router(cfg.routing)
    cases = {"134567890123456789": "wechatpay", "28" + "1" * 16: "alipay", "30" + "1" * 22: "alipay",
             "62" + "1" * 17: "unionpay", "18" + "1" * 16: "jdpay", "51" + "1" * 16: "bestpay",
             "01" + "1" * 17: "ecny", "91" + "1" * 16: "qqwallet", "88" + "1" * 16: "bankwallet"}
    for code, channel in cases.items():
        assert router.route(Method.BARCODE, None, code, None) == channel
    with pytest.raises(UnknownAuthCode):
        router.route(Method.BARCODE, None, "99" + "1" * 16, None)
    with pytest.raises(InvalidRequest):
        router.route(Method.BARCODE, "alipay", "134567890123456789", None)
    assert router.route(Method.NFC, None, None, "huaweipay") == "huaweipay"
    assert router.route(Method.NFC, None, None, None) == "unionpay"
    with pytest.raises(InvalidRequest):
        router.route(Method.QR, None, None, None)


def test_breaker_opens_probes_half_open_and_closes(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("paycore.core.breaker.time.monotonic", lambda: clock[0])
    b = Breaker("x", window=10, failure_ratio=0.5, min_calls=4, open_seconds=5, metrics=Metrics())
    for ok in (True, False, False, True):
        assert b.allow()
        b.record(ok)
    assert b.state == OPEN and not b.allow()
    clock[0] += 5
    assert b.allow() and b.state == HALF_OPEN
    assert not b.allow()          # one probe at a time
    b.record(False)
    assert b.state == OPEN
    clock[0] += 5
    assert b.allow()
    b.record(True)
    assert b.state == CLOSED and b.allow()


def test_request_signature_matches_the_contract():
    body = b'{"amount":1}'
    expected = hmac.new(b"k", b"POST\n/v1/payments?x=1\n1700000000\nabcdefghijklmnop\n" + body,
                        hashlib.sha256).hexdigest()
    assert canonical("POST", "/v1/payments?x=1", "1700000000", "abcdefghijklmnop", body).endswith(body)
    assert sign(b"k", "POST", "/v1/payments?x=1", "1700000000", "abcdefghijklmnop", body) == expected


def test_secrets_never_show_and_merchant_secrets_are_sealed():
    s = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{[s]}"
    box = SecretBox(Secret("master"))
    blob = box.seal("m1", "hunter2-very-secret")
    assert b"hunter2" not in blob
    assert box.open("m1", blob).get() == b"hunter2-very-secret"
    with pytest.raises(Exception):
        box.open("m2", blob)     # bound to its merchant
    with pytest.raises(ValueError):
        SecretBox(Secret(""))


def test_rate_limiter_answers_429_with_retry_after():
    from paycore.merchants.auth import Merchant
    m = Merchant("m", "m", Secret("s"), True, None, {}, 2.0, 0.0)
    rl = RateLimiter(rate=100, burst=200)
    for _ in range(4):   # the merchant's own limit (2/s, burst scaled ×2)
        rl.check(m)
    with pytest.raises(RateLimited) as e:
        rl.check(m)
    assert e.value.headers()["Retry-After"] == "1"


def test_config_env_wins_and_secrets_are_masked():
    cfg = config_mod.load(env={"PAYCORE_PORT": "9999", "PAYCORE_MASTER_KEY": "zzz-secret",
                               "PAYCORE_KAFKA_BOOTSTRAP": "k:9092"})
    assert cfg.server.port == 9999 and cfg.kafka.bootstrap == "k:9092"
    assert "zzz-secret" not in repr(cfg)
    with pytest.raises(ValueError):
        config_mod.from_dict({"server": {"prot": 1}}, env={})
    proxied = config_mod.from_dict({"onecode": {"trusted_proxies": ["10.0.0.1"]}},
                                   env={"PAYCORE_TRUSTED_PROXIES": "10.1.0.0/16, 10.2.0.5"})
    assert proxied.onecode.trusted_proxies == ("10.1.0.0/16", "10.2.0.5")


def test_kafka_compression_is_a_codec_aiokafka_has():
    from aiokafka import codec
    assert config_mod.from_dict({}, env={}).kafka.compression == "lz4"
    assert codec.has_lz4() and codec.has_zstd() and codec.has_snappy()   # cramjam is installed with paycore
    for ok in ("gzip", "lz4", "zstd", "snappy", ""):
        assert config_mod.from_dict({"kafka": {"compression": ok}}, env={}).kafka.compression == ok
    with pytest.raises(ValueError, match="kafka.compression"):
        config_mod.from_dict({"kafka": {"compression": "brotli"}}, env={})


def test_who_relays_is_workers_or_separate():
    assert config_mod.from_dict({}, env={}).kafka.relay == "workers"
    assert config_mod.from_dict({"kafka": {"relay": "separate"}}, env={}).kafka.relay == "separate"
    assert config_mod.from_dict({}, env={"PAYCORE_KAFKA_RELAY": "separate"}).kafka.relay == "separate"
    with pytest.raises(ValueError, match="kafka.relay"):
        config_mod.from_dict({"kafka": {"relay": "sidecar"}}, env={})


def test_a_serve_worker_tunes_the_cyclic_collector_once_started():
    import gc

    from paycore import runtime
    before = gc.get_threshold()
    try:
        runtime.tune_gc()
        assert gc.get_freeze_count() > 1000          # start-up's objects are out of the collector's sight
        assert gc.get_threshold() == (runtime.GC_THRESHOLD0, before[1], before[2])
        cycle: list = []
        cycle.append(cycle)                           # cycles are still collected
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_a_growing_heap_is_frozen_by_the_freezer_but_its_garbage_is_collected_first():
    """The simulators' order books only grow: every FREEZE_EVERY seconds the survivors of the young
    collections leave the collector's sight, so a full collection never walks the whole book again
    (each stopped every simulator for 0.2-0.9 s in a bench); garbage made before a sweep is freed,
    not frozen with them."""
    import asyncio
    import gc
    import weakref

    from paycore import runtime

    class Order:
        pass

    class Node:
        pass

    gc.collect()
    try:
        book = {i: Order() for i in range(1000)}      # long-lived: what a simulator keeps
        node = Node()
        node.me = node                                 # a cycle, garbage before the sweep
        gone = weakref.ref(node)
        del node
        frozen_before = gc.get_freeze_count()
        sweeper = asyncio.create_task(runtime.freeze_survivors(every=0.01))
        await asyncio.sleep(0.1)
        sweeper.cancel()
        assert gone() is None                          # collected, not frozen
        assert gc.get_freeze_count() >= frozen_before + len(book)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in book.values())   # out of every full collection's walk
        assert all(gc.is_tracked(o) for o in book.values())       # frozen, not lost: still objects
    finally:
        gc.unfreeze()
