"""Kafka's default partition for a record key, computed as the Java client and aiokafka's
DefaultPartitioner compute it, with less Python per key.

Kafka's producers place a keyed record on ``toPositive(murmur2(key)) % partitions``, where
murmur2 is ``org.apache.kafka.common.utils.Utils.murmur2`` (MurmurHash2, 32 bits, seed
0x9747b28c). Every producer of a topic must agree on it, or one payment's events land on two
partitions and lose their order. aiokafka's murmur2 works byte by byte with a mask after every
operation (~5 µs for a 28-byte payment id here); this one reads the key's whole little-endian
32-bit words in one ``struct`` call and masks once per step (tests/unit/test_partition.py checks
it against aiokafka's on keys of every length up to 100 bytes and on every partition count used).
"""
from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
#: unpackers of n little-endian unsigned 32-bit words, for keys up to 256 bytes (payment ids are ~28)
_WORDS = [struct.Struct(f"<{n}I") for n in range(65)]


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 of ``key`` as an unsigned 32-bit int (aiokafka.partitioner.murmur2's value)."""
    n = len(key)
    h = _SEED ^ n
    words = n >> 2
    unpack = _WORDS[words].unpack_from if words < len(_WORDS) else struct.Struct(f"<{words}I").unpack_from
    for k in unpack(key):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = n & 3
    if tail:
        i = n - tail
        if tail == 3:
            h ^= key[i + 2] << 16
        if tail >= 2:
            h ^= key[i + 1] << 8
        h = ((h ^ key[i]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` on a topic of ``partitions`` (0 … n-1)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
