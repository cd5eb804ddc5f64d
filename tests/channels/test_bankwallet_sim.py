"""bankwallet adapter against its simulator over real HTTP (loopback).

The barcode scenarios are shared (tests/channels/test_barcode_scenarios.py);
this file has what is bankwallet's own.
"""
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
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.secrets import Secret
from tests.support.channel_checks import ref
from tests.support.simpair import SimPair

CODE = "880000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bankwallet-keys")


async def test_wallet_and_sonic_succeed(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        wallet = pair.pay_request(amount=2000, method=Method.WALLET, payer={"user_id": "u-1"})
        assert (await pair.adapter.pay(wallet)).status is TradeStatus.SUCCEEDED
        sonic = pair.pay_request(amount=300, method=Method.SONIC, auth_code=CODE)   # a code sent by sound
        assert (await pair.adapter.pay(sonic)).status is TradeStatus.SUCCEEDED


async def test_wallet_without_user_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(pair.pay_request(amount=100, method=Method.WALLET))
        assert not e.value.retriable and "INVALID_REQUEST" in str(e.value)


async def test_unpaid_qr_is_closed_and_an_unknown_one_not_found(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        qr = pair.pay_request(amount=1012, method=Method.QR)
        await pair.adapter.pay(qr)
        assert (await pair.adapter.close(ref(qr))).status is TradeStatus.CLOSED
        missing = pair.pay_request(amount=1, method=Method.QR)
        assert (await pair.adapter.query(ref(missing))).status is TradeStatus.NOT_FOUND


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


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, secret=Secret("z" * 32))
        async with ProviderClient() as session:
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
