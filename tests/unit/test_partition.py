"""Kafka's default partition of a key (paycore/outbox/partition.py) against aiokafka's own
murmur2 and DefaultPartitioner: the relay must place every event where any other Kafka
producer of the topic would, or one payment's events lose their order."""
from __future__ import annotations

import os

from aiokafka.partitioner import DefaultPartitioner, murmur2 as aiokafka_murmur2

from paycore.core.models import new_id
from paycore.outbox.partition import murmur2, partition_of


def test_murmur2_is_kafkas_on_every_length_and_every_byte_value():
    keys = [b"", b"\x00", b"\xff", b"\xff\xff\xff", b"\x80\x00\x00\x00\x7f"]
    keys += [os.urandom(n) for n in range(0, 101) for _ in range(20)]
    keys += [bytes(range(256)), os.urandom(300)]   # past the cached unpackers
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_known_values_of_the_java_client():
    # org.apache.kafka.common.utils.UtilsTest.testMurmur2: the Java client's values (signed ints)
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    for key, signed in cases.items():
        assert murmur2(key) == signed & 0xFFFFFFFF, key


def test_the_partition_is_the_default_partitioners_for_payment_ids():
    ids = [new_id("pay").encode() for _ in range(2000)] + [new_id("ref").encode() for _ in range(200)]
    for count in (1, 3, 7, 12, 50):
        parts = list(range(count))
        for key in ids:
            assert partition_of(key, count) == DefaultPartitioner()(key, parts, parts)
    assert len({partition_of(k, 12) for k in ids}) == 12   # spread over every partition
