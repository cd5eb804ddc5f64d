"""bankwallet adapter against its simulator over real HTTP (loopback)."""
from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import orjson
import pytest

from channels.bankwallet import transformers as tf
from channels.bankwallet.adapter import BankWalletAdapter
from channels.base import (ChannelError, Method, Notification, NotificationRejected, RefundRequest, RefundStatus,
                           TradeRef, TradeStatus)
from channels.http import ChannelHttp
from paycore.secrets import Secret
from tests.support.simpair import SimPair

CODE = "880000000000000001"


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bankwallet-keys")


def trade(req) -> TradeRef:
    return TradeRef(out_trade_no=req.out_trade_no, amount=req.amount, method=req.method)


def refund_of(pair: SimPair, req, amount: int) -> RefundRequest:
    return RefundRequest(out_refund_no="rfd_" + secrets.token_hex(12), out_trade_no=req.out_trade_no,
                         channel_trade_no=None, total_amount=req.amount, refund_amount=amount, reason=None,
                         notify_url=pair.notify_url("refund"))


def barcode(pair: SimPair, amount: int):
    return pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=CODE)


async def test_barcode_wallet_and_sonic_succeed(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        res = await pair.adapter.pay(barcode(pair, 1000))
        assert res.status is TradeStatus.SUCCEEDED and res.amount == 1000 and res.paid_at and res.channel_trade_no
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
        req = pair.pay_request(amount=4200, method=Method.QR)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.qr_code
        await pair.customer_pays(qr_code=res.qr_code)
        note = await pair.next_notification()
        assert isinstance(note, Notification) and note.payment is not None
        assert (note.kind, note.out_trade_no, note.amount) == ("payment", req.out_trade_no, 4200)
        assert note.payment.status is TradeStatus.SUCCEEDED and note.merchant_ref == pair.adapter.settings.mch_id


async def test_userpaying_then_success_after_queries(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        req = barcode(pair, 1011)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
        statuses = [(await pair.adapter.query(trade(req))).status for _ in range(3)]
        assert statuses == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]


async def test_userpaying_forever_then_reverse_and_qr_close(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        req = barcode(pair, 1012)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
        assert (await pair.adapter.reverse(trade(req))).status is TradeStatus.REVERSED
        assert (await pair.adapter.query(trade(req))).status is TradeStatus.REVERSED
        qr = pair.pay_request(amount=1012, method=Method.QR)
        await pair.adapter.pay(qr)
        assert (await pair.adapter.close(trade(qr))).status is TradeStatus.CLOSED
        missing = pair.pay_request(amount=1, method=Method.QR)
        assert (await pair.adapter.query(trade(missing))).status is TradeStatus.NOT_FOUND


async def test_declined_is_failed_with_core_code(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        res = await pair.adapter.pay(barcode(pair, 1013))
        assert res.status is TradeStatus.FAILED and res.failure_code == "INSUFFICIENT_BALANCE"


@pytest.mark.parametrize("amount,kind,timing", [
    (1014, "system_error", {}),                               # SYSTEM_ERROR: taken, but answered as an error
    (1015, "timeout", {"timeout": 0.5, "slow_seconds": 1.0}),  # SLOW: answered after the platform gave up
])
async def test_unknown_outcome_is_retriable_then_query_finds_success(keys_dir: Path, amount: int, kind: str,
                                                                    timing: dict) -> None:
    async with SimPair.start("bankwallet", keys_dir, **timing) as pair:
        req = barcode(pair, amount)
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(req)
        assert e.value.retriable and e.value.kind == kind
        assert (await pair.adapter.query(trade(req))).status is TradeStatus.SUCCEEDED


async def test_duplicate_notifications_parse_to_the_same_result(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        req = barcode(pair, 1016)
        assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
        notes = [await pair.next_notification() for _ in range(3)]
        assert all(isinstance(n, Notification) for n in notes)
        seen = {(n.out_trade_no, n.amount, n.notification_id, n.payment.status) for n in notes}  # type: ignore
        assert len(seen) == 1 and next(iter(seen))[0] == req.out_trade_no


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
        full, part = barcode(pair, 500), barcode(pair, 900)
        for r in (full, part):
            assert (await pair.adapter.pay(r)).status is TradeStatus.SUCCEEDED
        refunds = [refund_of(pair, full, 500), refund_of(pair, part, 300)]
        for rr in refunds:
            got = await pair.adapter.refund(rr)
            assert got.status is RefundStatus.SUCCEEDED and got.channel_refund_no
            assert (await pair.adapter.query_refund(rr)).status is RefundStatus.SUCCEEDED
            note = await pair.next_notification()
            assert isinstance(note, Notification) and note.kind == "refund" and note.refund is not None
            assert (note.out_refund_no, note.amount) == (rr.out_refund_no, rr.refund_amount)
        over = await pair.adapter.refund(refund_of(pair, part, 601))
        assert over.status is RefundStatus.FAILED and over.failure_code == "REFUND_AMOUNT_EXCEEDED"
        assert (await pair.adapter.query(trade(full))).status is TradeStatus.SUCCEEDED

        lines = await pair.adapter.statement(datetime.now(timezone.utc).date())
        assert {(l.out_trade_no, l.amount) for l in lines if l.kind == "payment"} == {
            (full.out_trade_no, 500), (part.out_trade_no, 900)}
        assert {(l.out_refund_no, l.amount) for l in lines if l.kind == "refund"} == {
            (refunds[0].out_refund_no, 500), (refunds[1].out_refund_no, 300)}


async def test_refund_declined(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        req = barcode(pair, 1018)
        await pair.adapter.pay(req)
        got = await pair.adapter.refund(refund_of(pair, req, 100))
        assert got.status is RefundStatus.FAILED and got.failure_code == "REFUND_NOT_ALLOWED"


async def test_request_signed_with_wrong_key_is_refused(keys_dir: Path) -> None:
    async with SimPair.start("bankwallet", keys_dir) as pair:
        settings = dataclasses.replace(pair.adapter.settings, secret=Secret("z" * 32))
        async with aiohttp.ClientSession() as session:
            wrong = BankWalletAdapter(settings, ChannelHttp(session, "bankwallet", 1.0))
            req = barcode(pair, 100)
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
        req = barcode(pair, 100)
        for fault, kind in (("garbage", "bad_signature"), ("http500", "http_5xx")):
            pair.state.fault = fault
            with pytest.raises(ChannelError) as e:
                await pair.adapter.query(trade(req))
            assert e.value.retriable and e.value.kind == kind
