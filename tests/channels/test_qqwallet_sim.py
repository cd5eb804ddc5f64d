"""QQ Wallet adapter against its simulator over real HTTP (loopback).

The barcode scenarios are shared (tests/channels/test_barcode_scenarios.py);
this file has what is QQ Wallet's own.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from channels.base import ChannelError, Method, NotificationRejected, TradeStatus
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.qqwallet import transformers as tf
from channels.qqwallet.adapter import QqWalletAdapter
from channels.secrets import Secret
from tests.support.channel_checks import ref
from tests.support.simpair import SimPair

AUTH_CODE = "910000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qqwallet-keys")


async def test_barcode_succeeds_with_hmac_sha256_signing(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir, overrides={"extra": {"sign_type": "HMAC-SHA256"}}) as pair:
        req = pair.pay_request(amount=1016, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
        note = await pair.next_notification()
        assert not isinstance(note, NotificationRejected)
        assert note.out_trade_no == req.out_trade_no


async def test_jsapi_gives_pay_params_then_customer_pays(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        req = pair.pay_request(amount=300, method=Method.JSAPI)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.pay_params and res.pay_params["tokenId"]
        await pair.customer_pays(out_trade_no=req.out_trade_no)
        note = await pair.next_notification()
        assert not isinstance(note, NotificationRejected) and note.payment is not None
        assert note.payment.status is TradeStatus.SUCCEEDED and note.amount == 300
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED


async def test_qr_unpaid_then_close(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        req = pair.pay_request(amount=1012, method=Method.QR)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PENDING
        assert (await pair.adapter.close(ref(req))).status is TradeStatus.CLOSED
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.CLOSED


async def test_close_of_paid_order_reports_paid(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        req = pair.pay_request(amount=700, method=Method.BARCODE, auth_code=AUTH_CODE)
        await pair.adapter.pay(req)
        assert (await pair.adapter.close(ref(req))).status is TradeStatus.SUCCEEDED


async def test_duplicate_notifications_parse_to_the_same_result(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        req = pair.pay_request(amount=1016, method=Method.QR)
        res = await pair.adapter.pay(req)
        await pair.customer_pays(qr_code=res.qr_code or "")
        notes = [await pair.next_notification() for _ in range(3)]
        assert all(not isinstance(n, NotificationRejected) for n in notes)
        assert len({(n.out_trade_no, n.amount, n.payment.status) for n in notes}) == 1  # type: ignore[union-attr]


async def test_forged_notifications_are_rejected(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        fields = {"mch_id": pair.adapter.settings.mch_id, "trade_state": "SUCCESS", "total_fee": "100",
                  "transaction_id": "1", "out_trade_no": "pay_" + "0" * 24}
        key = str(pair.adapter.settings.secret.get())
        good = tf.signed(fields, key, tf.SIGN_MD5, "n1")
        note = await pair.adapter.parse_notification("payment", {}, tf.to_xml(good))
        assert note.amount == 100
        forged = [
            tf.to_xml(tf.signed(fields, "x" * 32, tf.SIGN_MD5, "n1")),           # another key
            tf.to_xml(dict(good, total_fee="10000")),                          # tampered body
            tf.to_xml({k: v for k, v in good.items() if k != "sign"}),          # unsigned
        ]
        for body in forged:
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", {}, body)
            assert e.value.reason == "bad_signature"
        with pytest.raises(NotificationRejected) as e:
            await pair.adapter.parse_notification("payment", {}, b"<html>")
        assert e.value.reason == "malformed"
        assert pair.adapter.ack(True).body == b"<xml><return_code>SUCCESS</return_code></xml>"


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, secret=Secret("y" * 32))
        async with ProviderClient() as session:
            wrong = QqWalletAdapter(settings, ChannelHttp(session, "qqwallet", 1.0))
            req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
            with pytest.raises(ChannelError) as e:
                await wrong.pay(req)
        assert not e.value.retriable and e.value.kind == "rejected" and "签名错误" in str(e.value)
        assert req.out_trade_no not in pair.state.orders


async def test_garbage_and_5xx_answers_are_retriable(keys_dir: Path) -> None:
    async with SimPair.start("qqwallet", keys_dir) as pair:
        pair.state.fault = "garbage"
        req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(req)
        assert e.value.retriable and e.value.kind == "garbage"
        pair.state.fault = "http500"
        with pytest.raises(ChannelError) as e:
            await pair.adapter.query(ref(req))
        assert e.value.retriable and e.value.kind == "http_5xx"
