"""JD Pay adapter against its simulator over real HTTP (scenarios by amount % 100)."""
from __future__ import annotations

import base64
import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import (
    ChannelError, Method, Notification, NotificationRejected, RefundRequest, RefundStatus, TradeRef, TradeStatus,
)
from channels.http import ChannelHttp
from channels.jdpay import transformers as tf
from channels.jdpay.adapter import JdPayAdapter, load_private_key
from tests.support.simpair import SimPair, free_port

CODE = "181234567890123456"   # routes to jdpay (^18\d{16}$)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jdpay-keys")


# -- barcode scenario checks --------------------------------------------------------
# The engine-facing behaviour is the same for every barcode channel, only the wire
# differs; test_bestpay_sim runs these same checks against its own simulator.
def ref(req) -> TradeRef:
    return TradeRef(req.out_trade_no, req.amount, req.method, created_at=req.created_at)


def refund_req(pair: SimPair, req, amount: int, n: int = 1) -> RefundRequest:
    return RefundRequest(f"rfd_{req.out_trade_no[4:-1]}{n}", req.out_trade_no, None, req.amount, amount,
                         "customer returned goods", pair.notify_url("refund"))


async def barcode(pair: SimPair, amount: int, code: str = CODE):
    req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=code)
    return req, await pair.adapter.pay(req)


async def check_barcode_success(pair: SimPair, code: str) -> None:
    req, res = await barcode(pair, 1000, code)
    assert res.status is TradeStatus.SUCCEEDED and res.amount == 1000 and res.channel_trade_no
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED
    assert (await pair.sim_order(req.out_trade_no))["pay_calls"] == 1


async def check_userpaying_then_success(pair: SimPair, code: str):
    req, res = await barcode(pair, 1011, code)
    assert res.status is TradeStatus.PROCESSING
    seen = [(await pair.adapter.query(ref(req))).status for _ in range(3)]
    assert seen == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]
    return req


async def check_userpaying_forever_then_reverse(pair: SimPair, code: str) -> None:
    req, res = await barcode(pair, 1012, code)
    assert res.status is TradeStatus.PROCESSING
    for _ in range(4):
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.PROCESSING
    assert (await pair.adapter.reverse(ref(req))).status is TradeStatus.REVERSED
    assert (await pair.adapter.reverse(ref(req))).status is TradeStatus.REVERSED   # repeatable
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.REVERSED


async def check_declined(pair: SimPair, code: str, failure_code: str) -> None:
    req, res = await barcode(pair, 1013, code)
    assert res.status is TradeStatus.FAILED and res.failure_code == failure_code
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.FAILED


async def check_unknown_outcome_then_query(pair: SimPair, code: str, amount: int, kind: str,
                                           found: TradeStatus) -> None:
    """System error (14/19) or a slow answer (15): retriable, and a query finds the truth."""
    req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=code)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == kind
    assert (await pair.adapter.query(ref(req))).status is found


async def check_not_found(pair: SimPair, code: str) -> None:
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=code)
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.NOT_FOUND


async def check_duplicate_notifications(pair: SimPair, code: str) -> None:
    req, res = await barcode(pair, 1016, code)
    assert res.status is TradeStatus.SUCCEEDED
    notes = [await pair.next_notification() for _ in range(3)]
    assert all(isinstance(n, Notification) for n in notes)
    assert len({(n.out_trade_no, n.amount, n.payment.status, n.notification_id) for n in notes}) == 1
    assert notes[0].out_trade_no == req.out_trade_no and notes[0].amount == 1016


async def check_out_of_order_notification(pair: SimPair, code: str) -> None:
    req, res = await barcode(pair, 1017, code)
    assert pair.notifications, "the notification came before the synchronous answer"
    assert res.status is TradeStatus.SUCCEEDED
    late = await pair.next_notification()
    assert isinstance(late, Notification) and late.out_trade_no == req.out_trade_no


async def check_refunds(pair: SimPair, code: str, over_refund_code: str) -> None:
    req, _ = await barcode(pair, 1000, code)
    part = refund_req(pair, req, 300, 1)
    assert (await pair.adapter.refund(part)).status is RefundStatus.SUCCEEDED
    assert (await pair.adapter.refund(part)).status is RefundStatus.SUCCEEDED   # same refund again: no double
    rest = refund_req(pair, req, 700, 2)
    assert (await pair.adapter.refund(rest)).status is RefundStatus.SUCCEEDED
    assert (await pair.sim_order(req.out_trade_no))["refunded"] == 1000
    over = await pair.adapter.refund(refund_req(pair, req, 1, 3))
    assert over.status is RefundStatus.FAILED and over.failure_code == over_refund_code
    notes = [await pair.next_notification() for _ in range(2)]
    assert {(n.out_refund_no, n.amount) for n in notes} == {(part.out_refund_no, 300), (rest.out_refund_no, 700)}
    assert all(n.kind == "refund" and n.refund.status is RefundStatus.SUCCEEDED for n in notes)

    full_req, _ = await barcode(pair, 500, code)
    assert (await pair.adapter.refund(refund_req(pair, full_req, 500))).status is RefundStatus.SUCCEEDED
    assert (await pair.adapter.query(ref(full_req))).status is TradeStatus.SUCCEEDED   # paid, then refunded


async def check_refund_declined(pair: SimPair, code: str, failure_code: str) -> None:
    req, _ = await barcode(pair, 1018, code)
    res = await pair.adapter.refund(refund_req(pair, req, 100))
    assert res.status is RefundStatus.FAILED and res.failure_code == failure_code


async def check_statement(pair: SimPair, code: str) -> None:
    a, _ = await barcode(pair, 1200, code)
    b, _ = await barcode(pair, 800, code)
    await barcode(pair, 1013, code)   # declined: not in the statement
    r = refund_req(pair, a, 200)
    await pair.adapter.refund(r)
    lines = await pair.adapter.statement(datetime.now(timezone.utc).date())
    got = {(ln.kind, ln.out_trade_no, ln.out_refund_no, ln.amount, ln.status) for ln in lines}
    assert got == {("payment", a.out_trade_no, None, 1200, "SUCCEEDED"),
                   ("payment", b.out_trade_no, None, 800, "SUCCEEDED"),
                   ("refund", a.out_trade_no, r.out_refund_no, 200, "REFUNDED")}


async def check_faults_are_retriable(pair: SimPair, code: str) -> None:
    for mode, kind in (("http500", "http_5xx"), ("garbage", "garbage")):
        async with aiohttp.ClientSession() as s:
            await s.post(f"{pair.base_url}/_sim/fault", json={"mode": mode})
        with pytest.raises(ChannelError) as e:
            await barcode(pair, 100, code)
        assert e.value.retriable and e.value.kind == kind


async def serve(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> tuple[web.AppRunner, str]:
    """A stand-in gateway on loopback (a man in the middle); returns its runner and base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


# -- JD Pay -------------------------------------------------------------------------
async def test_barcode_payment_succeeds(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_barcode_success(pair, CODE)


async def test_userpaying_then_success_after_queries(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_userpaying_then_success(pair, CODE)


async def test_userpaying_forever_then_reverse(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_userpaying_forever_then_reverse(pair, CODE)


async def test_declined_is_failed_with_jd_code(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_declined(pair, CODE, tf.CODE_DECLINED)


async def test_system_error_is_retriable_then_query_finds_the_outcome(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_unknown_outcome_then_query(pair, CODE, 1014, "system_error", TradeStatus.SUCCEEDED)
        await check_unknown_outcome_then_query(pair, CODE, 1019, "system_error", TradeStatus.FAILED)


async def test_slow_answer_times_out_then_query_finds_success(keys: Path) -> None:
    async with SimPair.start("jdpay", keys, timeout=0.5, slow_seconds=1.0) as pair:
        await check_unknown_outcome_then_query(pair, CODE, 1015, "timeout", TradeStatus.SUCCEEDED)


async def test_unknown_order_is_not_found(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_not_found(pair, CODE)


async def test_duplicate_notifications_parse_alike(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_duplicate_notifications(pair, CODE)


async def test_out_of_order_notification_arrives_before_the_answer(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_out_of_order_notification(pair, CODE)


async def test_full_and_partial_refunds(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_refunds(pair, CODE, tf.CODE_REFUND_DECLINED)


async def test_refund_declined(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_refund_declined(pair, CODE, tf.CODE_REFUND_DECLINED)


async def test_statement_lists_the_days_payments_and_refunds(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_statement(pair, CODE)


async def test_http_500_and_garbage_are_retriable(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        await check_faults_are_retriable(pair, CODE)


async def test_refund_can_be_queried(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req, _ = await barcode(pair, 600)
        r = refund_req(pair, req, 600)
        await pair.adapter.refund(r)
        assert (await pair.adapter.query_refund(r)).status is RefundStatus.SUCCEEDED
        unknown = await pair.adapter.query_refund(refund_req(pair, req, 1, 7))
        assert unknown.status is RefundStatus.FAILED and unknown.failure_code == tf.CODE_NOT_FOUND


async def test_qr_order_paid_by_customer_notifies_success(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req = pair.pay_request(amount=2500, method=Method.QR)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.qr_code
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.PENDING
        await pair.customer_pays(qr_code=res.qr_code)
        note = await pair.next_notification()
        assert isinstance(note, Notification) and note.kind == "payment"
        assert note.out_trade_no == req.out_trade_no and note.amount == 2500
        assert note.payment is not None and note.payment.status is TradeStatus.SUCCEEDED
        assert note.merchant_ref == pair.adapter.settings.mch_id


async def test_h5_order_gives_cashier_url_then_customer_pays(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req = pair.pay_request(amount=300, method=Method.H5)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.pay_params
        assert res.pay_params["orderId"] == res.channel_trade_no
        assert res.channel_trade_no in res.pay_params["pay_url"]
        await pair.customer_pays(out_trade_no=req.out_trade_no)
        note = await pair.next_notification()
        assert isinstance(note, Notification) and note.payment is not None
        assert note.payment.status is TradeStatus.SUCCEEDED and note.out_trade_no == req.out_trade_no


async def test_unpaid_qr_order_is_closed(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req = pair.pay_request(amount=400, method=Method.QR)
        await pair.adapter.pay(req)
        assert (await pair.adapter.close(ref(req))).status is TradeStatus.CLOSED
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.CLOSED


async def test_closing_a_paid_qr_order_reports_it_paid(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req = pair.pay_request(amount=401, method=Method.QR)
        await pair.customer_pays(qr_code=(await pair.adapter.pay(req)).qr_code or "")
        assert (await pair.adapter.close(ref(req))).status is TradeStatus.SUCCEEDED
        assert (await pair.sim_order(req.out_trade_no))["reverse_calls"] == 0


def _note_fields(req) -> list:
    return [("version", tf.VERSION), ("merchant", "110226843002"), ("result", (("code", "000000"), ("desc", "ok"))),
            ("tradeNum", req.out_trade_no), ("tradeType", "0"), ("amount", "100"), ("status", tf.ST_SUCCESS)]


async def test_forged_notifications_are_rejected(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req = pair.pay_request(amount=100, method=Method.QR)
        des = tf.des_key_bytes(str(pair.adapter.settings.extra["des_key"]))
        provider = load_private_key(str(keys / "jdpay" / "provider_private.pem"))
        genuine = tf.seal(provider, des, "110226843002", _note_fields(req), result=("000000", "ok"))
        note = await pair.adapter.parse_notification("payment", {}, genuine)
        assert note.payment is not None and note.payment.status is TradeStatus.SUCCEEDED

        forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = tf.seal(forger, des, "110226843002", _note_fields(req), result=("000000", "ok"))
        other_des = tf.seal(provider, bytes(range(24)), "110226843002", _note_fields(req))
        env = tf.parse_xml(genuine)
        hex_text = base64.b64decode(env["encrypt"]).decode()
        flipped = hex_text[:-20] + ("0" if hex_text[-20] != "0" else "1") + hex_text[-19:]
        tampered = genuine.replace(env["encrypt"].encode(), base64.b64encode(flipped.encode()))
        for body, reasons in ((forged, {"bad_signature"}), (other_des, {"undecryptable", "bad_signature"}),
                              (tampered, {"undecryptable", "bad_signature"}), (b"<html>", {"malformed"}),
                              (tf.error_envelope("110226843002", "000000", "ok"), {"malformed"})):
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", {}, body)
            assert e.value.reason in reasons


async def test_request_signed_with_wrong_key_is_refused(keys: Path, tmp_path: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = tmp_path / "other.pem"
        pem.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
        settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(pem))
        async with aiohttp.ClientSession() as session:
            wrong = JdPayAdapter(settings, ChannelHttp(session, "jdpay", 2.0))
            req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE)
            with pytest.raises(ChannelError) as e:
                await wrong.pay(req)
        assert not e.value.retriable and e.value.kind == "auth"
        assert req.out_trade_no not in pair.state.orders


async def test_answer_signed_with_another_key_is_rejected(keys: Path) -> None:
    # a man in the middle who knows the des key but not JD's RSA key answers "paid"
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async with SimPair.start("jdpay", keys) as pair:
        des = tf.des_key_bytes(str(pair.adapter.settings.extra["des_key"]))

        async def forged(request: web.Request) -> web.Response:
            fields = [("version", tf.VERSION), ("merchant", "110226843002"),
                      ("result", (("code", "000000"), ("desc", "ok"))), ("tradeNum", "pay_x"), ("status", "2")]
            return web.Response(body=tf.seal(forger, des, "110226843002", fields, result=("000000", "ok")))

        runner, url = await serve({"/service/fkmPay": forged})
        try:
            settings = dataclasses.replace(pair.adapter.settings, base_url=url)
            async with aiohttp.ClientSession() as session:
                adapter = JdPayAdapter(settings, ChannelHttp(session, "jdpay", 2.0))
                with pytest.raises(ChannelError) as e:
                    await adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE))
            assert e.value.retriable and e.value.kind == "bad_signature"
        finally:
            await runner.cleanup()
