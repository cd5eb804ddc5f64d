"""Small helpers shared by integration tests: payment codes by channel, forged
notifications built with a simulator's own builder, and a Kafka reader."""
from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import date
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from channels import emv
from paycore.bizday import Calendar
from simulators.kit import STATE_KEY, SimOrder, SimState

#: a valid payment code for each barcode channel (prefixes from channels.md)
CODE_PREFIX = {"wechatpay": ("13", 16), "alipay": ("28", 16), "unionpay": ("62", 17), "jdpay": ("18", 16),
               "bestpay": ("51", 16), "ecny": ("01", 17), "qqwallet": ("91", 16), "bankwallet": ("88", 16)}


def auth_code(channel: str) -> str:
    prefix, n = CODE_PREFIX[channel]
    return prefix + "".join(random.choice("0123456789") for _ in range(n))


def nfc_token(prefix: str = "6250946", length: int = 16) -> str:
    """A random network token (DPAN) with a valid check digit, as the API requires."""
    body = prefix + "".join(random.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return next(body + d for d in "0123456789" if emv.is_luhn(body + d))


def amount(scenario: int = 0, yuan: int | None = None) -> int:
    """An amount in fen whose last two digits pick the simulator's scenario (0 = plain success)."""
    base = (yuan if yuan is not None else random.randint(1, 500)) * 100
    return base + scenario if scenario else base + random.choice((0, 1, 5, 20, 38, 50, 99))


def sim_state(stack: Any, channel: str) -> SimState:
    return stack.sims.apps[channel][STATE_KEY]


def sim_order(stack: Any, channel: str, payment_id: str) -> SimOrder:
    state = sim_state(stack, channel)
    for order in state.orders.values():
        if order.out_trade_no == payment_id or order.extra.get("paycore_id") == payment_id:
            return order
    # channels that map ids (e.g. no underscore allowed) keep the mapped form
    for order in state.orders.values():
        if order.out_trade_no.replace("_", "") == payment_id.replace("_", ""):
            return order
    raise KeyError(payment_id)


async def post_notification(stack: Any, channel: str, order: SimOrder, *, tamper: str | None = None,
                            refund: Any = None) -> tuple[int, bytes]:
    """Build a notification with the simulator's own builder (so it is validly
    signed) for ``order`` — possibly a doctored copy — and post it to paycore.

    ``tamper="body"`` flips a byte of the signed body afterwards (bad signature)."""
    state = sim_state(stack, channel)
    builder = state.refund_notify_builder if refund is not None else state.notify_builder
    assert builder is not None, f"{channel} simulator sends no notifications"
    url, headers, body = builder(order, refund)
    if tamper == "body":
        body = _flip(body)
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=body, headers=headers) as r:
            return r.status, await r.read()


def _flip(body: bytes) -> bytes:
    """Change one significant character: a digit if there is one, else a letter."""
    b = bytearray(body)
    for i in range(len(b) // 2, len(b)):
        if chr(b[i]).isdigit():
            b[i] = ord("1") if b[i] != ord("1") else ord("2")
            return bytes(b)
    for i in range(len(b) // 2, len(b)):
        if chr(b[i]).isalpha():
            b[i] = ord("A") if b[i] != ord("A") else ord("B")
            return bytes(b)
    return bytes(b) + b" "


def doctored(order: SimOrder, **changes: Any) -> SimOrder:
    """A copy of a simulator's order with some fields changed; never touches the
    simulator's own order. A new ``out_trade_no`` also replaces the provider's
    mapped forms of the id kept in ``extra`` (e.g. UnionPay's orderId)."""
    extra = dict(order.extra)
    new_no = changes.get("out_trade_no")
    if new_no:
        old = order.out_trade_no
        forms = [(old, new_no), (old.replace("_", ""), new_no.replace("_", "")),
                 (old.replace("_", "X"), new_no.replace("_", "X"))]
        for k, v in extra.items():
            if isinstance(v, str):
                for a, b in forms:
                    v = v.replace(a, b)
                extra[k] = v
    return dataclasses.replace(order, extra=extra, refunds=dict(order.refunds), **changes)


async def read_topic(bootstrap: str, topic: str, until: set[str], timeout: float = 20.0) -> list[dict]:
    """Read the whole topic from the beginning (partitions assigned directly, no
    group) until every event id in ``until`` was seen or ``timeout``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = await _partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p) for p in parts])
        await consumer.seek_to_beginning()
        out: list[dict] = []
        seen: set[str] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not until <= seen:
            batch = await consumer.getmany(timeout_ms=300)
            for tp, msgs in batch.items():
                for m in msgs:
                    ev = orjson.loads(m.value)
                    ev["_key"] = m.key.decode() if m.key else None
                    ev["_partition"] = tp.partition
                    out.append(ev)
                    seen.add(ev["event_id"])
        return out
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return parts
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} does not exist")


def business_today() -> date:
    """Today's business day (Asia/Shanghai, the default): the day providers' statements and settlement use."""
    return Calendar.of().today()
