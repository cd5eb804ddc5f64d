"""bankwallet adapter against its simulator over real HTTP (loopback)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from channels.bankwallet import transformers as tf
from channels.bankwallet.adapter import BankWalletAdapter
from channels.base import ChannelError, Method, NotificationRejected, TradeStatus
from channels.http import ChannelHttp
from paycore.secrets import Secret
from tests.support.channel_checks import (
    check_barcode_success, check_declined, check_duplicate_notifications, check_faults_are_retriable,
    check_qr_paid_by_customer, check_refund_declined, check_refunds_in_statement, check_unknown_outcome_then_query,
    check_userpaying_forever_then_reverse, check_userpaying_then_success, ref,
)
from tests.support.simpair import SimPair

CODE = "880000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bankwallet-keys")


async def test_barcode_wallet_and_sonic_succeed(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_barcode_success(pair, CODE)
        wallet = pair.pay_request(amount=2000, method=Method.WALLET, payer={"user_id": "u-1"})
        assert (await pair.adapter.pay(wallet)).status is TradeStatus.SUCCEEDED
        sonic = pair.pay_request(amount=300, method=Method.SONIC, auth_code=CODE)   # a code sent by sound
        assert (await pair.adapter.pay(sonic)).status is TradeStatus.SUCCEEDED


async def test_wallet_without_user_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(pair.pay_request(amount=100, method=Method.WALLET))
        assert not e.value.retriable and "INVALID_REQUEST" in str(e.value)


async def test_qr_pending_then_customer_pays_and_notification_arrives(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_qr_paid_by_customer(pair, 4200)


async def test_userpaying_then_success_after_queries(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_userpaying_then_success(pair, CODE)


async def test_userpaying_forever_then_reverse_and_qr_close(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_userpaying_forever_then_reverse(pair, CODE)
        qr = pair.pay_request(amount=1012, method=Method.QR)
        await pair.adapter.pay(qr)
        assert (await pair.adapter.close(ref(qr))).status is TradeStatus.CLOSED
        missing = pair.pay_request(amount=1, method=Method.QR)
        assert (await pair.adapter.query(ref(missing))).status is TradeStatus.NOT_FOUND


async def test_declined_is_failed_with_core_code(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_declined(pair, CODE, "INSUFFICIENT_BALANCE")


@pytest.mark.parametrize("amount,kind,timing", [
    (1014, "system_error", {}),                               # SYSTEM_ERROR: taken, but answered as an error
    (1015, "timeout", {"timeout": 0.5, "slow_seconds": 1.0}),  # SLOW: answered after the platform gave up
])
async def test_unknown_outcome_is_retriable_then_query_finds_success(keys_dir: Path, amount: int, kind: str,
                                                                    timing: dict) -> None:
    async with SimPair.start("bankwallet", keys_dir, **timing) as pair:
        await check_unknown_outcome_then_query(pair, CODE, amount, kind)


async def test_duplicate_notifications_parse_to_the_same_result(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_duplicate_notifications(pair, CODE)


async def test_forged_and_stale_notifications_are_rejected(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        key = pair.adapter.settings.secret.get_bytes()
        body = orjson.dumps({"event": "payment", "notify_id": "N1", "payment": {
            "merchant_id": "BW000000001", "out_trade_no": "pay_x", "amount": 100, "status": "SUCCESS"}})
        now = str(int(time.time()))
        good = tf.signed_headers(key, now, "n" * 32, body, "application/json")
        assert (await pair.adapter.parse_notification("payment", good, body)).amount == 100
        cases = [
            (tf.signed_headers(b"k" * 32, now, "n" * 32, body, "application/json"), body, "bad_signature"),
            (good, body.replace(b"100", b"900"), "bad_signature"),
            ({k: v for k, v in good.items() if k != tf.SIG_HEADER}, body, "bad_signature"),
            (tf.signed_headers(key, str(int(time.time()) - 301), "n" * 32, body, "application/json"), body,
             "stale"),
            (tf.signed_headers(key, now, "n" * 32, b"[]", "application/json"), b"[]", "malformed"),
        ]
        for headers, payload, reason in cases:
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", headers, payload)
            assert e.value.reason == reason
        assert pair.adapter.ack(True).body == b'{"result":"OK"}'


async def test_full_and_partial_refund_notifications_and_statement(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_refunds_in_statement(pair, CODE, paid=(500, 900), refunded=(500, 300), over=601,
                                         over_code="REFUND_AMOUNT_EXCEEDED", reason=None)


async def test_refund_declined(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_refund_declined(pair, CODE, "REFUND_NOT_ALLOWED")


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, secret=Secret("z" * 32))
        async with aiohttp.ClientSession() as session:
            wrong = BankWalletAdapter(settings, ChannelHttp(session, "bankwallet", 1.0))
            req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE)
            with pytest.raises(ChannelError) as e:
                await wrong.pay(req)
        assert not e.value.retriable and e.value.kind == "rejected" and "INVALID_SIGNATURE" in str(e.value)
        assert req.out_trade_no not in pair.state.orders


async def test_replayed_nonce_and_stale_timestamp_are_refused(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        key = pair.adapter.settings.secret.get_bytes()
        body = orjson.dumps({"merchant_id": pair.adapter.settings.mch_id, "out_trade_no": "pay_nope"})
        url = pair.base_url + tf.PATHS["query"]
        async with aiohttp.ClientSession() as s:
            headers = tf.signed_headers(key, str(int(time.time())), "r" * 32, body, "application/json")
            answers = []
            for _ in range(2):
                async with s.post(url, data=body, headers=headers) as r:
                    answers.append((r.status, (await r.json())["error_code"]))
            stale = tf.signed_headers(key, str(int(time.time()) - 400), "s" * 32, body, "application/json")
            async with s.post(url, data=body, headers=stale) as r:
                answers.append((r.status, (await r.json())["error_code"]))
        assert answers == [(404, "ORDER_NOT_FOUND"), (401, "NONCE_REUSED"), (401, "TIMESTAMP_EXPIRED")]


async def test_unsigned_or_5xx_answers_are_retriable(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        await check_faults_are_retriable(pair, CODE, (("garbage", "bad_signature"), ("http500", "http_5xx")),
                                         query=True)
