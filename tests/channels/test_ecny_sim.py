"""e-CNY acquirer-profile adapter against its simulator over real HTTP (loopback)."""
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
from channels.http import ChannelHttp
from tests.support.channel_checks import (
    barcode, check_barcode_success, check_declined, check_duplicate_notifications, check_empty_statement,
    check_faults_are_retriable, check_qr_paid_by_customer, check_refund_declined, check_refunds_in_statement,
    check_unknown_outcome_then_query, check_userpaying_forever_then_reverse, check_userpaying_then_success, ref,
    refund_req,
)
from tests.support.simpair import SimPair

CODE = "0100000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ecny-keys")


async def test_barcode_succeeds_and_bad_code_is_declined(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_barcode_success(pair, CODE)
        bad = await pair.adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code="62" + "0" * 17))
        assert bad.status is TradeStatus.FAILED and bad.failure_code == "200002"


async def test_qr_pending_then_customer_pays_and_notification_arrives(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_qr_paid_by_customer(pair, 8800)


async def test_userpaying_then_success_after_queries(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_userpaying_then_success(pair, CODE)


async def test_userpaying_forever_then_revoke_and_qr_close(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_userpaying_forever_then_reverse(pair, CODE)
        qr = pair.pay_request(amount=1012, method=Method.QR)
        await pair.adapter.pay(qr)
        assert (await pair.adapter.close(ref(qr))).status is TradeStatus.CLOSED
        paid, _ = await barcode(pair, 100, CODE)
        assert (await pair.adapter.close(ref(paid))).status is TradeStatus.SUCCEEDED
        ghost = pair.pay_request(amount=1, method=Method.QR)
        assert (await pair.adapter.query(ref(ghost))).status is TradeStatus.NOT_FOUND


async def test_declined_is_failed_with_acquirer_code(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_declined(pair, CODE, "200001")


@pytest.mark.parametrize("amount,kind,timing", [
    (1014, "system_error", {}),                               # SYSTEM_ERROR: taken, but answered "system busy"
    (1015, "timeout", {"timeout": 0.5, "slow_seconds": 1.0}),  # SLOW: answered after the platform gave up
])
async def test_unknown_outcome_is_retriable_then_query_finds_success(keys_dir: Path, amount: int, kind: str,
                                                                    timing: dict) -> None:
    async with SimPair.start("ecny", keys_dir, **timing) as pair:
        await check_unknown_outcome_then_query(pair, CODE, amount, kind)


async def test_duplicate_and_early_notifications_parse_to_the_same_result(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        for amount, copies in ((1016, 3), (1017, 2)):   # DUPLICATE_NOTIFY, OUT_OF_ORDER_NOTIFY
            await check_duplicate_notifications(pair, CODE, amount, copies)


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


async def test_full_and_partial_refund_notifications_and_bill(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        _, part = await check_refunds_in_statement(pair, CODE, paid=(500, 901), refunded=(500, 1), over=901,
                                                   over_code="300002", reason="r")
        missing = await pair.adapter.query_refund(refund_req(pair, part, 1, 9))
        assert missing.status is RefundStatus.FAILED and missing.failure_code == "300004"
        await check_empty_statement(pair)


async def test_refund_declined(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_refund_declined(pair, CODE, "300001", amount=1018)


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path, tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "other.pem"
    pem.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    async with SimPair.start("ecny", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(pem))
        async with aiohttp.ClientSession() as session:
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


async def test_unsigned_or_5xx_answers_are_retriable(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        await check_faults_are_retriable(pair, CODE, (("garbage", "bad_signature"), ("http500", "http_5xx")),
                                         query=True)
