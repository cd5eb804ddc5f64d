"""Bestpay adapter against its simulator over real HTTP (scenarios by amount % 100).

The barcode scenario checks are shared (tests/support/channel_checks.py: same
engine contract, another wire); this file adds what is Bestpay's own.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from channels.base import (
    ChannelError, Method, Notification, NotificationRejected, TradeRef, TradeStatus, UnsupportedFlow,
)
from channels.bestpay import transformers as tf
from channels.bestpay.adapter import BestpayAdapter
from channels.http import ChannelHttp
from paycore.secrets import Secret
from tests.support.channel_checks import (
    barcode, check_barcode_success, check_declined, check_duplicate_notifications, check_faults_are_retriable,
    check_not_found, check_out_of_order_notification, check_refund_declined, check_refunds, check_statement,
    check_unknown_outcome_then_query, check_userpaying_forever_then_reverse, check_userpaying_then_success,
    refund_req, serve,
)
from tests.support.simpair import SimPair

CODE = "511234567890123456"   # routes to bestpay (^51\d{16}$)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bestpay-keys")


@pytest.fixture
async def pair(keys: Path) -> AsyncIterator[SimPair]:
    async with SimPair.start("bestpay", keys) as p:
        yield p


async def test_barcode_payment_succeeds(pair: SimPair) -> None:
    await check_barcode_success(pair, CODE, paid_at=False)


async def test_only_barcode_is_offered(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        with pytest.raises(UnsupportedFlow):
            await pair.adapter.pay(pair.pay_request(amount=100, method=Method.QR))
        with pytest.raises(UnsupportedFlow):
            await pair.adapter.close(TradeRef("pay_x", 1, Method.BARCODE))


async def test_userpaying_then_success_after_queries(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        req = await check_userpaying_then_success(pair, CODE)
        note = await pair.next_notification()     # paid while being queried: Bestpay notifies backUrl
        assert isinstance(note, Notification) and note.payment is not None
        assert note.payment.status is TradeStatus.SUCCEEDED and note.out_trade_no == req.out_trade_no


async def test_userpaying_forever_then_reverse(pair: SimPair) -> None:
    await check_userpaying_forever_then_reverse(pair, CODE)


async def test_declined_is_failed_with_bestpay_code(pair: SimPair) -> None:
    await check_declined(pair, CODE, tf.ERR_DECLINED)


async def test_system_error_is_retriable_then_query_finds_the_outcome(pair: SimPair) -> None:
    await check_unknown_outcome_then_query(pair, CODE, 1014, "system_error", TradeStatus.SUCCEEDED)
    await check_unknown_outcome_then_query(pair, CODE, 1019, "system_error", TradeStatus.FAILED)


async def test_slow_answer_times_out_then_query_finds_success(keys: Path) -> None:
    async with SimPair.start("bestpay", keys, timeout=0.5, slow_seconds=1.0) as pair:
        await check_unknown_outcome_then_query(pair, CODE, 1015, "timeout", TradeStatus.SUCCEEDED)


async def test_unknown_order_is_not_found(pair: SimPair) -> None:
    await check_not_found(pair, CODE)


async def test_duplicate_notifications_parse_alike(pair: SimPair) -> None:
    await check_duplicate_notifications(pair, CODE)


async def test_out_of_order_notification_arrives_before_the_answer(pair: SimPair) -> None:
    await check_out_of_order_notification(pair, CODE)


async def test_full_and_partial_refunds(pair: SimPair) -> None:
    await check_refunds(pair, CODE, tf.ERR_REFUND_REFUSED)


async def test_refund_declined(pair: SimPair) -> None:
    await check_refund_declined(pair, CODE, tf.ERR_REFUND_REFUSED)


async def test_statement_lists_the_days_payments_and_refunds(pair: SimPair) -> None:
    await check_statement(pair, CODE)


async def test_http_500_and_garbage_are_retriable(pair: SimPair) -> None:
    await check_faults_are_retriable(pair, CODE)


async def test_forged_notifications_are_rejected(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        key = (keys / "bestpay" / "secret").read_text().strip()
        form = {"MERCHANTID": pair.adapter.settings.mch_id, "UPTRANSEQ": "BP1", "ORDERSEQ": "payX" + "0" * 24,
                "ORDERREQTRANSEQ": "payX" + "0" * 24, "ORDERAMOUNT": "100", "RETNCODE": "0000", "TRANDATE": "20240101"}
        genuine = urlencode(dict(form, SIGN=tf.mac(tf.PAY_NOTIFY_MAC, form, key))).encode()
        note = await pair.adapter.parse_notification("payment", {}, genuine)
        assert note.out_trade_no == "pay_" + "0" * 24 and note.amount == 100

        wrong_key = urlencode(dict(form, SIGN=tf.mac(tf.PAY_NOTIFY_MAC, form, "not-the-key"))).encode()
        tampered = genuine.replace(b"ORDERAMOUNT=100", b"ORDERAMOUNT=1")
        unsigned = urlencode(form).encode()
        other_merchant = dict(form, MERCHANTID="999")
        foreign = urlencode(dict(other_merchant, SIGN=tf.mac(tf.PAY_NOTIFY_MAC, other_merchant, key))).encode()
        for body, reason in ((wrong_key, "bad_signature"), (tampered, "bad_signature"), (unsigned, "bad_signature"),
                             (foreign, "unknown_merchant"), (b"\xff\xfe", "malformed")):
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", {}, body)
            assert e.value.reason == reason


async def test_request_with_wrong_key_is_refused_with_mac_error(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        settings = dataclasses.replace(pair.adapter.settings, secret=Secret("W" * 32))
        async with aiohttp.ClientSession() as session:
            wrong = BestpayAdapter(settings, ChannelHttp(session, "bestpay", 2.0))
            req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE)
            with pytest.raises(ChannelError) as e:
                await wrong.pay(req)
            assert not e.value.retriable and e.value.kind == "auth"
            paid, _ = await barcode(pair, 300, CODE)
            with pytest.raises(ChannelError):
                await wrong.refund(refund_req(pair, paid, 300))
        assert req.out_trade_no not in pair.state.orders
        assert (await pair.sim_order(paid.out_trade_no))["refunded"] == 0


async def test_answer_with_a_wrong_sign_is_rejected(keys: Path) -> None:
    # a man in the middle answering "paid" without the merchant key
    async def forged(request: web.Request) -> web.Response:
        result = {"merchantId": "043101180050000", "ourTransNo": "BP1", "transAmt": "100", "transStatus": "B",
                  "sign": "0" * 32}
        return web.json_response({"success": True, "result": result, "errorCode": None, "errorMsg": None})

    runner, url = await serve({"/barcode/placeOrder": forged})
    try:
        async with SimPair.start("bestpay", keys) as pair:
            settings = dataclasses.replace(pair.adapter.settings, base_url=url)
            async with aiohttp.ClientSession() as session:
                adapter = BestpayAdapter(settings, ChannelHttp(session, "bestpay", 2.0))
                with pytest.raises(ChannelError) as e:
                    await adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE))
            assert e.value.retriable and e.value.kind == "bad_signature"
    finally:
        await runner.cleanup()
