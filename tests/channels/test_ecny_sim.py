"""e-CNY acquirer-profile adapter against its simulator over real HTTP (loopback)."""
from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import (ChannelError, Method, Notification, NotificationRejected, RefundRequest, RefundStatus,
                           TradeRef, TradeStatus)
from channels.ecny import transformers as tf
from channels.ecny.adapter import EcnyAdapter, load_private_key
from channels.http import ChannelHttp
from tests.support.simpair import SimPair

CODE = "0100000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ecny-keys")


def trade_ref(req) -> TradeRef:
    return TradeRef(out_trade_no=req.out_trade_no, amount=req.amount, method=req.method)


def refund_for(pair: SimPair, req, amount: int) -> RefundRequest:
    return RefundRequest(out_refund_no="rfd_" + secrets.token_hex(12), out_trade_no=req.out_trade_no,
                         channel_trade_no=None, total_amount=req.amount, refund_amount=amount, reason="r",
                         notify_url=pair.notify_url("refund"))


def code_pay(pair: SimPair, amount: int):
    return pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=CODE)


async def test_barcode_succeeds_and_bad_code_is_declined(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        res = await pair.adapter.pay(code_pay(pair, 1234))
        assert res.status is TradeStatus.SUCCEEDED and res.amount == 1234 and res.paid_at and res.channel_trade_no
        bad = await pair.adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code="62" + "0" * 17))
        assert bad.status is TradeStatus.FAILED and bad.failure_code == "200002"


async def test_qr_pending_then_customer_pays_and_notification_arrives(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        req = pair.pay_request(amount=8800, method=Method.QR)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.qr_code
        await pair.customer_pays(qr_code=res.qr_code)
        note = await pair.next_notification()
        assert isinstance(note, Notification) and note.payment is not None
        assert (note.kind, note.out_trade_no, note.amount) == ("payment", req.out_trade_no, 8800)
        assert note.payment.status is TradeStatus.SUCCEEDED and note.merchant_ref == pair.adapter.settings.mch_id


async def test_userpaying_then_success_after_queries(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        req = code_pay(pair, 1011)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
        statuses = [(await pair.adapter.query(trade_ref(req))).status for _ in range(3)]
        assert statuses == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]


async def test_userpaying_forever_then_revoke_and_qr_close(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        req = code_pay(pair, 1012)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
        assert (await pair.adapter.reverse(trade_ref(req))).status is TradeStatus.REVERSED
        assert (await pair.adapter.query(trade_ref(req))).status is TradeStatus.REVERSED
        qr = pair.pay_request(amount=1012, method=Method.QR)
        await pair.adapter.pay(qr)
        assert (await pair.adapter.close(trade_ref(qr))).status is TradeStatus.CLOSED
        paid = code_pay(pair, 100)
        await pair.adapter.pay(paid)
        assert (await pair.adapter.close(trade_ref(paid))).status is TradeStatus.SUCCEEDED
        ghost = pair.pay_request(amount=1, method=Method.QR)
        assert (await pair.adapter.query(trade_ref(ghost))).status is TradeStatus.NOT_FOUND


async def test_declined_is_failed_with_acquirer_code(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        res = await pair.adapter.pay(code_pay(pair, 1013))
        assert res.status is TradeStatus.FAILED and res.failure_code == "200001"


@pytest.mark.parametrize("amount,kind,timing", [
    (1014, "system_error", {}),                               # SYSTEM_ERROR: taken, but answered "system busy"
    (1015, "timeout", {"timeout": 0.5, "slow_seconds": 1.0}),  # SLOW: answered after the platform gave up
])
async def test_unknown_outcome_is_retriable_then_query_finds_success(keys_dir: Path, amount: int, kind: str,
                                                                    timing: dict) -> None:
    async with SimPair.start("ecny", keys_dir, **timing) as pair:
        req = code_pay(pair, amount)
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(req)
        assert e.value.retriable and e.value.kind == kind
        assert (await pair.adapter.query(trade_ref(req))).status is TradeStatus.SUCCEEDED


async def test_duplicate_and_early_notifications_parse_to_the_same_result(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        for amount, copies in ((1016, 3), (1017, 2)):   # DUPLICATE_NOTIFY, OUT_OF_ORDER_NOTIFY
            req = code_pay(pair, amount)
            assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
            notes = [await pair.next_notification() for _ in range(copies)]
            assert all(isinstance(n, Notification) for n in notes)
            seen = {(n.out_trade_no, n.amount, n.notification_id, n.payment.status) for n in notes}  # type: ignore
            assert seen == {(req.out_trade_no, amount, notes[0].notification_id, TradeStatus.SUCCEEDED)}


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
        full, part = code_pay(pair, 500), code_pay(pair, 901)
        for r in (full, part):
            assert (await pair.adapter.pay(r)).status is TradeStatus.SUCCEEDED
        refunds = [refund_for(pair, full, 500), refund_for(pair, part, 1)]
        for rr in refunds:
            got = await pair.adapter.refund(rr)
            assert got.status is RefundStatus.SUCCEEDED and got.channel_refund_no
            assert (await pair.adapter.query_refund(rr)).status is RefundStatus.SUCCEEDED
            note = await pair.next_notification()
            assert isinstance(note, Notification) and note.kind == "refund" and note.refund is not None
            assert (note.out_refund_no, note.amount, note.refund.status) == (
                rr.out_refund_no, rr.refund_amount, RefundStatus.SUCCEEDED)
        over = await pair.adapter.refund(refund_for(pair, part, 901))
        assert over.status is RefundStatus.FAILED and over.failure_code == "300002"
        missing = await pair.adapter.query_refund(refund_for(pair, part, 1))
        assert missing.status is RefundStatus.FAILED and missing.failure_code == "300004"

        lines = await pair.adapter.statement(datetime.now(timezone.utc).date())
        assert {(l.out_trade_no, l.amount) for l in lines if l.kind == "payment"} == {
            (full.out_trade_no, 500), (part.out_trade_no, 901)}
        assert {(l.out_refund_no, l.amount) for l in lines if l.kind == "refund"} == {
            (refunds[0].out_refund_no, 500), (refunds[1].out_refund_no, 1)}
        assert await pair.adapter.statement(datetime(2001, 1, 1).date()) == []


async def test_refund_declined(keys_dir: Path) -> None:
    async with SimPair.start("ecny", keys_dir) as pair:
        req = code_pay(pair, 1018)
        await pair.adapter.pay(req)
        got = await pair.adapter.refund(refund_for(pair, req, 1018))
        assert got.status is RefundStatus.FAILED and got.failure_code == "300001"


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path, tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "other.pem"
    pem.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    async with SimPair.start("ecny", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(pem))
        async with aiohttp.ClientSession() as session:
            wrong = EcnyAdapter(settings, ChannelHttp(session, "ecny", 1.0))
            req = code_pay(pair, 100)
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
        req = code_pay(pair, 100)
        for fault, kind in (("garbage", "bad_signature"), ("http500", "http_5xx")):
            pair.state.fault = fault
            with pytest.raises(ChannelError) as e:
                await pair.adapter.query(trade_ref(req))
            assert e.value.retriable and e.value.kind == kind
