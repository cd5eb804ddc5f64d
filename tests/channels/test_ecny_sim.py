"""e-CNY acquirer-profile adapter against its simulator over real HTTP (loopback).

The barcode scenarios are shared (tests/channels/test_barcode_scenarios.py);
this file has what is e-CNY's own.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import ChannelError, Method, NotificationRejected, RefundStatus, TradeStatus
from channels.ecny import transformers as tf
from channels.ecny.adapter import EcnyAdapter, load_private_key
from channels.client import ProviderClient
from channels.http import ChannelHttp
from tests.support.channel_checks import barcode, ref, refund_req
from tests.support.simpair import SimPair

CODE = "0100000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ecny-keys")


async def test_bad_code_is_declined(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        bad = await pair.adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code="62" + "0" * 17))
        assert bad.status is TradeStatus.FAILED and bad.failure_code == "200002"


async def test_close_of_unpaid_and_paid_orders_then_unknown_is_not_found(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        qr = pair.pay_request(amount=1012, method=Method.QR)
        await pair.adapter.pay(qr)
        assert (await pair.adapter.close(ref(qr))).status is TradeStatus.CLOSED
        paid, _ = await barcode(pair, 100, CODE)
        assert (await pair.adapter.close(ref(paid))).status is TradeStatus.SUCCEEDED
        ghost = pair.pay_request(amount=1, method=Method.QR)
        assert (await pair.adapter.query(ref(ghost))).status is TradeStatus.NOT_FOUND


async def test_forged_and_stale_notifications_are_rejected(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        s = pair.adapter.settings
        acquirer = load_private_key(str(keys_dir / "ecny" / "provider_private.pem"))
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        body = orjson.dumps({"notify_id": "E1", "notify_type": "trade", "merchant_no": s.mch_id,
                             "out_trade_no": "pay_x", "total_amount": "1.00", "trade_state": "SUCCESS"})

        def auth(key, payload: bytes, ts: int | None = None, serial: str = s.provider_serial_no) -> dict:
            t = str(ts or int(time.time()))
            sig = tf.rsa_sign(key, tf.message(s.app_id, serial, t, "n" * 32, payload))
            return {"Authorization": tf.authorization(s.app_id, serial, t, "n" * 32, sig)}

        assert (await pair.adapter.parse_notification("payment", auth(acquirer, body), body)).amount == 100
        cases = [
            (auth(other, body), body, "bad_signature"),                                   # wrong key
            (auth(acquirer, body), body.replace(b"1.00", b"9.00"), "bad_signature"),      # tampered
            ({}, body, "bad_signature"),                                                  # unsigned
            (auth(acquirer, body, serial="FFFF"), body, "bad_signature"),                 # unknown certificate
            (auth(acquirer, body, ts=int(time.time()) - 400), body, "stale"),
            (auth(acquirer, b"{}"), b"{}", "malformed"),
        ]
        for headers, payload, reason in cases:
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", headers, payload)
            assert e.value.reason == reason
        assert orjson.loads(pair.adapter.ack(True).body) == {"code": "SUCCESS", "message": "执行成功"}


async def test_query_of_an_unknown_refund_is_not_found_with_300004(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        part, _ = await barcode(pair, 901, CODE)
        assert (await pair.adapter.refund(refund_req(pair, part, 1, reason="r"))).status is RefundStatus.SUCCEEDED
        missing = await pair.adapter.query_refund(refund_req(pair, part, 1, 9))
        assert missing.status is RefundStatus.NOT_FOUND and missing.failure_code == "300004"   # not proof of failure


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path, tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "other.pem"
    pem.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    async with SimPair.start("ecny", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(pem))
        async with ProviderClient() as session:
            wrong = EcnyAdapter(settings, ChannelHttp(session, "ecny", 1.0))
            req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE)
            with pytest.raises(ChannelError) as e:
                await wrong.pay(req)
        assert not e.value.retriable and e.value.kind == "rejected" and "000002" in str(e.value)
        assert req.out_trade_no not in pair.state.orders


async def test_replayed_request_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        s = pair.adapter.settings
        key = load_private_key(s.private_key_file)
        body = orjson.dumps(tf.envelope({"merchant_no": s.mch_id, "out_trade_no": "pay_none"},
                                        datetime.now(timezone.utc)))
        ts = str(int(time.time()))
        sig = tf.rsa_sign(key, tf.message(s.app_id, s.serial_no, ts, "q" * 32, body))
        headers = {"Authorization": tf.authorization(s.app_id, s.serial_no, ts, "q" * 32, sig)}
        async with aiohttp.ClientSession() as session:
            got = []
            for _ in range(2):
                async with session.post(pair.base_url + tf.PATHS["query"], data=body, headers=headers) as r:
                    got.append((r.status, (await r.json())["code"]))
        assert got == [(200, tf.ORDER_NOT_EXIST), (401, tf.SIGN_ERROR)]
