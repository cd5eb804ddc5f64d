"""The barcode scenarios the barcode channels share, each against its simulator over real HTTP.

One row a channel in :data:`CHANNELS` (its barcode, its own failure codes,
which of the shared scenarios its simulator plays, with which numbers); one
test a scenario, parametrized over the rows that play it (ids: the channel
names; ``<channel>-<amount>`` for the scenarios played at several amounts). The
checks are in tests/support/channel_checks.py; what is a channel's own (its
wire, signatures, other methods, forged notifications, wrong keys) is in
tests/channels/test_<channel>_sim.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from channels.base import Notification, RefundStatus, TradeStatus
from channels.bestpay import transformers as bestpay_tf
from channels.jdpay import transformers as jdpay_tf
from tests.channels.test_bankwallet_sim import CODE as BANKWALLET_CODE
from tests.channels.test_bestpay_sim import CODE as BESTPAY_CODE
from tests.channels.test_ecny_sim import CODE as ECNY_CODE
from tests.channels.test_jdpay_sim import CODE as JDPAY_CODE
from tests.channels.test_qqwallet_sim import AUTH_CODE as QQWALLET_CODE
from tests.support.channel_checks import (
    check_barcode_success, check_declined, check_duplicate_notifications, check_empty_statement,
    check_faults_are_retriable, check_not_found, check_out_of_order_notification, check_qr_paid_by_customer,
    check_refund_declined, check_refunds, check_refunds_in_statement, check_statement,
    check_unknown_outcome_then_query, check_userpaying_forever_then_reverse, check_userpaying_then_success,
)
from tests.support.simpair import SimPair

SLOW = {"timeout": 0.5, "slow_seconds": 1.0}   # SLOW (15) answers after paycore's timeout
SYSTEM_ERROR_PAID = (1014, "system_error", TradeStatus.SUCCEEDED)   # taken, but answered as an error
SYSTEM_ERROR_UNPAID = (1019, "system_error", TradeStatus.FAILED)    # an error, and no money taken
SLOW_PAID = (1015, "timeout", TradeStatus.SUCCEEDED)                # answered after the platform gave up
UNSIGNED_OR_5XX = (("garbage", "bad_signature"), ("http500", "http_5xx"))


@dataclass(frozen=True)
class Channel:
    """A barcode channel and the shared scenarios it plays (None or empty: not this one)."""
    name: str
    code: str                                    # a barcode that routes to it
    declined: str                                # failure code of DECLINED (13)
    refund_refused: str                          # failure code of REFUND_DECLINED (18) ...
    refund_refused_amount: int = 100             # ... when refunding this much of it
    paid_at: bool = True                         # the barcode answer says when it was paid
    userpaying_code: str | None = None           # USERPAYING (11): the failure code the answer carries
    notifies_when_paid_by_query: bool = False    # USERPAYING then paid: a payment notification follows
    unknown_outcomes: tuple[tuple[int, str, TradeStatus], ...] = (SYSTEM_ERROR_PAID, SLOW_PAID)
    qr_amount: int | None = None                 # a QR order of this much, paid by the customer
    duplicate_notifications: tuple[tuple[int, int], ...] = ((1016, 3),)   # (amount, copies)
    out_of_order_notification: bool = False
    not_found: bool = False
    refunds: str | None = None                   # check_refunds, with this over-refund code
    refunds_in_statement: dict[str, Any] | None = None   # check_refunds_in_statement's keywords
    statement: bool = False                      # check_statement
    empty_statement: bool = False
    faults: dict[str, Any] | None = None          # check_faults_are_retriable's keywords


CHANNELS = (
    Channel("bestpay", BESTPAY_CODE, declined=bestpay_tf.ERR_DECLINED, refund_refused=bestpay_tf.ERR_REFUND_REFUSED,
            paid_at=False,                                       # Bestpay's answer does not say when
            notifies_when_paid_by_query=True,                    # it notifies backUrl
            unknown_outcomes=(SYSTEM_ERROR_PAID, SYSTEM_ERROR_UNPAID, SLOW_PAID),
            out_of_order_notification=True, not_found=True, refunds=bestpay_tf.ERR_REFUND_REFUSED, statement=True,
            faults={}),
    Channel("jdpay", JDPAY_CODE, declined=jdpay_tf.CODE_DECLINED, refund_refused=jdpay_tf.CODE_REFUND_DECLINED,
            unknown_outcomes=(SYSTEM_ERROR_PAID, SYSTEM_ERROR_UNPAID, SLOW_PAID), qr_amount=2500,
            out_of_order_notification=True, not_found=True, refunds=jdpay_tf.CODE_REFUND_DECLINED, statement=True,
            faults={}),
    Channel("bankwallet", BANKWALLET_CODE, declined="INSUFFICIENT_BALANCE", refund_refused="REFUND_NOT_ALLOWED",
            qr_amount=4200,
            refunds_in_statement=dict(paid=(500, 900), refunded=(500, 300), over=601,
                                      over_code="REFUND_AMOUNT_EXCEEDED", reason=None),
            faults=dict(faults=UNSIGNED_OR_5XX, query=True)),
    Channel("ecny", ECNY_CODE, declined="200001", refund_refused="300001", refund_refused_amount=1018,
            qr_amount=8800,
            duplicate_notifications=((1016, 3), (1017, 2)),      # DUPLICATE_NOTIFY, OUT_OF_ORDER_NOTIFY
            refunds_in_statement=dict(paid=(500, 901), refunded=(500, 1), over=901, over_code="300002", reason="r"),
            empty_statement=True, faults=dict(faults=UNSIGNED_OR_5XX, query=True)),
    Channel("qqwallet", QQWALLET_CODE, declined="NOTENOUGH", refund_refused="NOTENOUGH", refund_refused_amount=1018,
            userpaying_code="USERPAYING", qr_amount=2500,
            duplicate_notifications=(),                          # its own test: QR, no notification id
            refunds_in_statement=dict(paid=(500, 900), refunded=(500, 250), over=651,
                                      answered=RefundStatus.PROCESSING, notified=False, reason="test"),
            empty_statement=True),                               # faults: its own test (pay, then query)
)


def channels(having: Callable[[Channel], Any] = lambda c: True) -> pytest.MarkDecorator:
    """Parametrize ``channel`` over the rows for which ``having`` holds."""
    return pytest.mark.parametrize("channel", [c for c in CHANNELS if having(c)], ids=lambda c: c.name)


def each(field: str) -> list[Any]:
    """One param per (channel, entry of its tuple ``field``): the channel and the entry's items."""
    return [pytest.param(c, *entry, id=f"{c.name}-{entry[0]}") for c in CHANNELS for entry in getattr(c, field)]


@pytest.fixture
async def pair(channel: Channel, keys: Path) -> AsyncIterator[SimPair]:
    async with SimPair.start(channel.name, keys) as p:
        yield p


# -- barcode ----------------------------------------------------------------------
@channels()
async def test_barcode_payment_succeeds(channel: Channel, pair: SimPair) -> None:
    await check_barcode_success(pair, channel.code, paid_at=channel.paid_at)


@channels()
async def test_userpaying_then_success_after_queries(channel: Channel, pair: SimPair) -> None:
    req = await check_userpaying_then_success(pair, channel.code, channel.userpaying_code)
    if channel.notifies_when_paid_by_query:
        note = await pair.next_notification()
        assert isinstance(note, Notification) and note.payment is not None
        assert note.payment.status is TradeStatus.SUCCEEDED and note.out_trade_no == req.out_trade_no


@channels()
async def test_userpaying_forever_then_reverse(channel: Channel, pair: SimPair) -> None:
    await check_userpaying_forever_then_reverse(pair, channel.code)


@channels()
async def test_declined_is_failed_with_the_channels_code(channel: Channel, pair: SimPair) -> None:
    await check_declined(pair, channel.code, channel.declined)


@pytest.mark.parametrize("channel, amount, kind, found", each("unknown_outcomes"))
async def test_unknown_outcome_is_retriable_then_query_finds_it(channel: Channel, keys: Path, amount: int, kind: str,
                                                                found: TradeStatus) -> None:
    async with SimPair.start(channel.name, keys, **(SLOW if kind == "timeout" else {})) as pair:
        await check_unknown_outcome_then_query(pair, channel.code, amount, kind, found)


@channels(lambda c: c.not_found)
async def test_unknown_order_is_not_found(channel: Channel, pair: SimPair) -> None:
    await check_not_found(pair, channel.code)


@channels(lambda c: c.qr_amount)
async def test_qr_order_paid_by_customer_notifies_success(channel: Channel, pair: SimPair) -> None:
    await check_qr_paid_by_customer(pair, channel.qr_amount)


# -- notifications ------------------------------------------------------------------
@pytest.mark.parametrize("channel, amount, copies", each("duplicate_notifications"))
async def test_duplicate_notifications_parse_alike(channel: Channel, pair: SimPair, amount: int, copies: int) -> None:
    await check_duplicate_notifications(pair, channel.code, amount, copies)


@channels(lambda c: c.out_of_order_notification)
async def test_out_of_order_notification_arrives_before_the_answer(channel: Channel, pair: SimPair) -> None:
    await check_out_of_order_notification(pair, channel.code)


# -- refunds and statements -----------------------------------------------------------
@channels(lambda c: c.refunds)
async def test_full_and_partial_refunds(channel: Channel, pair: SimPair) -> None:
    await check_refunds(pair, channel.code, channel.refunds)


@channels(lambda c: c.refunds_in_statement)
async def test_full_and_partial_refunds_then_statement(channel: Channel, pair: SimPair) -> None:
    await check_refunds_in_statement(pair, channel.code, **(channel.refunds_in_statement or {}))


@channels()
async def test_refund_declined(channel: Channel, pair: SimPair) -> None:
    await check_refund_declined(pair, channel.code, channel.refund_refused, amount=channel.refund_refused_amount)


@channels(lambda c: c.statement)
async def test_statement_lists_the_days_payments_and_refunds(channel: Channel, pair: SimPair) -> None:
    await check_statement(pair, channel.code)


@channels(lambda c: c.empty_statement)
async def test_statement_of_a_day_without_trades_is_empty(channel: Channel, pair: SimPair) -> None:
    await check_empty_statement(pair)


# -- faults ---------------------------------------------------------------------------
@channels(lambda c: c.faults is not None)
async def test_faults_are_retriable(channel: Channel, pair: SimPair) -> None:
    await check_faults_are_retriable(pair, channel.code, **(channel.faults or {}))
