"""UnionPay ACP adapter against its simulator over real HTTP (scenarios by amount % 100)."""
from __future__ import annotations

import dataclasses
import logging
from datetime import date
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import (
    ChannelError,
    Method,
    NfcData,
    Notification,
    NotificationRejected,
    PayRequest,
    RefundRequest,
    RefundStatus,
    TradeRef,
    TradeStatus,
)
from channels.unionpay import transformers as t
from channels.unionpay.adapter import UnionPayAdapter
from tests.support.simpair import SimPair
from tests.support.helpers import business_today

CODE = "6212345678901234567"      # ^62\d{17}$ routes to unionpay
TOKEN = "6225880000000001"
CRYPTOGRAM = "8F1E2D3C4B5A6978"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("unionpay-keys")


@pytest.fixture
async def pair(keys: Path):
    async with SimPair.start("unionpay", keys, timeout=0.5, slow_seconds=1.0) as p:
        yield p


def ref(req: PayRequest, channel_trade_no: str | None = None) -> TradeRef:
    return TradeRef(req.out_trade_no, req.amount, req.method, channel_trade_no, created_at=req.created_at)


def refund_req(pair: SimPair, req: PayRequest, qry_id: str | None, amount: int, n: int = 1) -> RefundRequest:
    return RefundRequest(f"rfd_{req.out_trade_no[4:-1]}{n}", req.out_trade_no, qry_id, req.amount, amount,
                         "returned", pair.notify_url("refund"), payment_created_at=req.created_at)


async def barcode(pair: SimPair, amount: int):
    req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=CODE)
    return req, await pair.adapter.pay(req)


async def note_for(pair: SimPair, out_trade_no: str, kind: str = "payment") -> Notification:
    while True:
        note = await pair.next_notification()
        assert isinstance(note, Notification), note
        if note.out_trade_no == out_trade_no and note.kind == kind:
            return note


def order_id(req: PayRequest) -> str:
    return t.to_order_id(req.out_trade_no)


# -- every method ----------------------------------------------------------------------
async def test_barcode_with_a_62_code_succeeds(pair):
    req, res = await barcode(pair, 1000)
    assert res.status is TradeStatus.SUCCEEDED and res.amount == 1000 and res.channel_trade_no
    assert res.paid_at is not None and res.wallet is None
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED
    order = await pair.sim_order(req.out_trade_no)
    assert order["pay_calls"] == 1 and order["channel_trade_no"] == res.channel_trade_no


async def test_qr_is_pending_until_the_customer_scans_then_notifies(pair):
    req = pair.pay_request(amount=2000, method=Method.QR)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING and res.qr_code and res.qr_code.startswith("https://qr.95516.com/")
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.PENDING
    await pair.customer_pays(qr_code=res.qr_code)
    note = await note_for(pair, req.out_trade_no)
    assert note.amount == 2000 and note.merchant_ref == pair.adapter.settings.mch_id
    assert note.payment is not None and note.payment.status is TradeStatus.SUCCEEDED
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED


async def test_app_returns_tn_then_customer_pays_in_app(pair):
    req = pair.pay_request(amount=3000, method=Method.APP)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING and res.pay_params is not None
    assert set(res.pay_params) == {"tn"}
    await pair.customer_pays(prepay_id=res.pay_params["tn"])
    note = await note_for(pair, req.out_trade_no)
    assert note.payment is not None and note.payment.status is TradeStatus.SUCCEEDED and note.amount == 3000


async def test_customer_pays_by_out_trade_no(pair):
    req = pair.pay_request(amount=3100, method=Method.APP)
    await pair.adapter.pay(req)
    await pair.customer_pays(out_trade_no=req.out_trade_no)
    assert (await note_for(pair, req.out_trade_no)).amount == 3100


async def test_nfc_tap_succeeds_and_the_simulator_keeps_no_token(pair):
    nfc = NfcData(token=TOKEN, expiry="2812", cryptogram=CRYPTOGRAM, emv_data="9F02060000000040009F3602001A")
    req = pair.pay_request(amount=4000, method=Method.NFC, nfc=nfc)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.SUCCEEDED and res.amount == 4000 and res.wallet is None
    order = pair.state.orders[req.out_trade_no]
    assert TOKEN not in repr(order) and CRYPTOGRAM not in repr(order)


async def test_nfc_with_a_wallet_records_it(pair):
    nfc = NfcData(token=TOKEN, expiry="2812", cryptogram=CRYPTOGRAM, wallet="applepay")
    req = pair.pay_request(amount=4100, method=Method.NFC, nfc=nfc)
    assert (await pair.adapter.pay(req)).wallet == "applepay"
    assert (await pair.adapter.query(ref(req))).wallet == "applepay"


async def test_nfc_token_and_cryptogram_never_reach_repr_or_logs(pair, caplog):
    caplog.set_level(logging.DEBUG)
    nfc = NfcData(token=TOKEN, expiry="2812", cryptogram=CRYPTOGRAM, wallet="huaweipay")
    req = pair.pay_request(amount=4200, method=Method.NFC, nfc=nfc)
    await pair.adapter.pay(req)
    await pair.adapter.query(ref(req))
    shown = [repr(req), str(req), repr(nfc), *(r.getMessage() for r in caplog.records)]
    assert any("pay" in s for s in shown[3:]), "the adapter logs its calls"
    assert not [s for s in shown if TOKEN in s or CRYPTOGRAM in s]


async def test_requests_missing_what_the_method_needs_are_invalid(pair):
    for req in (pair.pay_request(amount=100, method=Method.BARCODE),
                pair.pay_request(amount=100, method=Method.NFC),
                pair.pay_request(amount=100, method=Method.JSAPI)):
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(req)
        assert not e.value.retriable and e.value.kind == "invalid_request"
    assert not pair.state.orders


# -- scenarios ---------------------------------------------------------------------------
async def test_userpaying_then_success_after_queries(pair):
    req, res = await barcode(pair, 1011)
    assert res.status is TradeStatus.PROCESSING and res.channel_trade_no
    seen = [(await pair.adapter.query(ref(req))).status for _ in range(3)]
    assert seen == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]


async def test_userpaying_forever_then_reverse(pair):
    req, res = await barcode(pair, 1012)
    for _ in range(3):
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.PROCESSING
    rev = await pair.adapter.reverse(ref(req, res.channel_trade_no))
    assert rev.status is TradeStatus.REVERSED and not rev.retry
    assert (await pair.adapter.reverse(ref(req, res.channel_trade_no))).status is TradeStatus.REVERSED
    order = await pair.sim_order(req.out_trade_no)
    assert order["state"] == "REVOKED" and order["reverse_calls"] == 2
    # ACP's query reports the consume itself, which never completed
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.FAILED


async def test_reverse_without_queryid_learns_it_by_query(pair):
    req, _ = await barcode(pair, 1012)
    assert (await pair.adapter.reverse(ref(req))).status is TradeStatus.REVERSED
    missing = pair.pay_request(amount=1012, method=Method.BARCODE, auth_code=CODE)
    assert (await pair.adapter.reverse(ref(missing))).status is TradeStatus.NOT_FOUND


async def test_unpaid_qr_is_closed_and_a_paid_one_is_not(pair):
    req = pair.pay_request(amount=5012, method=Method.QR)
    await pair.adapter.pay(req)
    assert (await pair.adapter.close(ref(req))).status is TradeStatus.CLOSED
    assert (await pair.sim_order(req.out_trade_no))["state"] == "CLOSED"
    paid = pair.pay_request(amount=5000, method=Method.QR)
    qr = (await pair.adapter.pay(paid)).qr_code
    await pair.customer_pays(qr_code=qr)
    assert (await pair.adapter.close(ref(paid))).status is TradeStatus.SUCCEEDED


async def test_declined_is_failed_with_the_provider_code(pair):
    req, res = await barcode(pair, 1013)
    assert (res.status, res.failure_code) == (TradeStatus.FAILED, "64") and res.failure_message
    q = await pair.adapter.query(ref(req))
    assert (q.status, q.failure_code) == (TradeStatus.FAILED, "64")
    # a refused cancel of a failed payment reports what it really is
    assert (await pair.adapter.reverse(ref(req, q.channel_trade_no))).status is TradeStatus.FAILED


async def test_system_error_is_retriable_then_query_finds_it_paid(pair):
    req = pair.pay_request(amount=1014, method=Method.BARCODE, auth_code=CODE)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == "system_error"
    q = await pair.adapter.query(ref(req))
    assert q.status is TradeStatus.SUCCEEDED and q.amount == 1014


async def test_system_error_then_failed(pair):
    req = pair.pay_request(amount=1019, method=Method.BARCODE, auth_code=CODE)
    with pytest.raises(ChannelError):
        await pair.adapter.pay(req)
    q = await pair.adapter.query(ref(req))
    assert (q.status, q.failure_code) == (TradeStatus.FAILED, "60")


async def test_slow_answer_times_out_then_query_succeeds(pair):
    req = pair.pay_request(amount=1015, method=Method.BARCODE, auth_code=CODE)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == "timeout"
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED


async def test_duplicate_notifications_each_parse_to_the_same_result(pair):
    req, res = await barcode(pair, 1016)
    notes = [await note_for(pair, req.out_trade_no) for _ in range(3)]
    assert all(n == notes[0] for n in notes)
    assert notes[0].payment is not None and notes[0].payment.channel_trade_no == res.channel_trade_no


async def test_out_of_order_notification_arrives_before_and_after_the_answer(pair):
    req, res = await barcode(pair, 1017)
    assert res.status is TradeStatus.SUCCEEDED
    first = pair.notifications[0]
    assert isinstance(first, Notification) and first.out_trade_no == req.out_trade_no
    assert (await note_for(pair, req.out_trade_no)).payment.status is TradeStatus.SUCCEEDED


async def test_a_repeated_pay_is_a_duplicate_so_query(pair):
    req, _ = await barcode(pair, 1000)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == "system_error"
    assert (await pair.sim_order(req.out_trade_no))["pay_calls"] == 1


async def test_query_of_an_order_never_sent_is_not_found(pair):
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE)
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.NOT_FOUND


# -- refunds -----------------------------------------------------------------------------------
async def test_partial_then_full_refund(pair):
    req, res = await barcode(pair, 1000)
    first = refund_req(pair, req, res.channel_trade_no, 300, 1)
    r = await pair.adapter.refund(first)
    assert r.status is RefundStatus.PROCESSING and r.channel_refund_no
    note = await note_for(pair, req.out_trade_no, "refund")
    assert (note.out_refund_no, note.amount) == (first.out_refund_no, 300)
    assert note.refund is not None and note.refund.status is RefundStatus.SUCCEEDED
    assert (await pair.adapter.query_refund(first)).status is RefundStatus.SUCCEEDED
    rest = refund_req(pair, req, res.channel_trade_no, 700, 2)
    assert (await pair.adapter.refund(rest)).status is RefundStatus.PROCESSING
    assert (await note_for(pair, req.out_trade_no, "refund")).amount == 700
    too_much = await pair.adapter.refund(refund_req(pair, req, res.channel_trade_no, 1, 3))
    assert (too_much.status, too_much.failure_code) == (RefundStatus.FAILED, "33")
    assert (await pair.sim_order(req.out_trade_no))["refunded"] == 1000


async def test_a_repeated_refund_is_a_duplicate_and_the_query_settles_it(pair):
    req, res = await barcode(pair, 1000)
    rr = refund_req(pair, req, res.channel_trade_no, 1000)
    await pair.adapter.refund(rr)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.refund(rr)
    assert e.value.retriable
    assert (await pair.adapter.query_refund(rr)).status is RefundStatus.SUCCEEDED


async def test_refund_without_queryid_learns_it_by_query(pair):
    req, _ = await barcode(pair, 1000)
    assert (await pair.adapter.refund(refund_req(pair, req, None, 400))).status is RefundStatus.PROCESSING
    assert (await pair.sim_order(req.out_trade_no))["refunded"] == 400
    with pytest.raises(ChannelError) as e:     # a payment UnionPay never saw cannot be refunded
        await pair.adapter.refund(refund_req(pair, pair.pay_request(amount=1, method=Method.QR), None, 1))
    assert e.value.kind == "invalid_request" and not e.value.retriable


async def test_refund_declined(pair):
    req, res = await barcode(pair, 1018)
    r = await pair.adapter.refund(refund_req(pair, req, res.channel_trade_no, 100))
    assert (r.status, r.failure_code) == (RefundStatus.FAILED, "01")
    never = refund_req(pair, req, res.channel_trade_no, 100, 2)
    assert (await pair.adapter.query_refund(never)).status is RefundStatus.NOT_FOUND   # not proof of failure


async def test_statement_lists_the_days_payments_and_refunds(pair):
    req, res = await barcode(pair, 1000)
    qr = pair.pay_request(amount=2500, method=Method.QR)
    await pair.customer_pays(qr_code=(await pair.adapter.pay(qr)).qr_code)
    rr = refund_req(pair, req, res.channel_trade_no, 250)
    await pair.adapter.refund(rr)
    await barcode(pair, 1013)                      # declined: not in the file
    lines = await pair.adapter.statement(business_today())
    got = {(x.kind, x.out_trade_no, x.out_refund_no, x.amount, x.status) for x in lines}
    assert got == {("payment", req.out_trade_no, None, 1000, "SUCCEEDED"),
                   ("payment", qr.out_trade_no, None, 2500, "SUCCEEDED"),
                   ("refund", req.out_trade_no, rr.out_refund_no, 250, "REFUNDED")}
    assert await pair.adapter.statement(date(2001, 1, 2)) == []       # 98: no file that day


# -- forgeries and faults -----------------------------------------------------------------------
async def test_forged_notifications_are_rejected(pair, keys):
    req, _ = await barcode(pair, 1016)
    assert pair.state.notify_builder is not None
    _, _, genuine = pair.state.notify_builder(pair.state.orders[req.out_trade_no], None)
    async with aiohttp.ClientSession() as s:
        tampered = genuine.replace(b"txnAmt=1016", b"txnAmt=1")
        outsider = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fields = t.parse_form(genuine)
        forged = t.encode_form(t.signed(fields, outsider))
        for body in (tampered, forged, b"signature=abc&txnType=01", b"\xff\xfe"):
            async with s.post(pair.notify_url(), data=body) as r:
                assert r.status != 200
    rejected = [n for n in pair.notifications if isinstance(n, NotificationRejected)]
    assert [n.reason for n in rejected] == ["bad_signature", "bad_signature", "bad_signature", "malformed"]
    assert (await pair.adapter.parse_notification("payment", {}, genuine)).out_trade_no == req.out_trade_no


def other_adapter(pair: SimPair, tmp: Path, *, ours: bool) -> UnionPayAdapter:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if ours:
        path = tmp / "other_private.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(path))
    else:
        path = tmp / "other_public.pem"
        path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
        settings = dataclasses.replace(pair.adapter.settings, provider_public_key_file=str(path))
    return UnionPayAdapter(settings, pair.adapter.http)


async def test_simulator_refuses_a_request_signed_with_the_wrong_key(pair, tmp_path):
    wrong = other_adapter(pair, tmp_path, ours=True)
    req = pair.pay_request(amount=1000, method=Method.BARCODE, auth_code=CODE)
    with pytest.raises(ChannelError) as e:
        await wrong.pay(req)
    assert not e.value.retriable and e.value.kind == "rejected" and "11" in str(e.value)
    assert req.out_trade_no not in pair.state.orders


async def test_an_answer_not_signed_by_unionpay_is_bad_signature(pair, tmp_path):
    wrong = other_adapter(pair, tmp_path, ours=False)
    with pytest.raises(ChannelError) as e:
        await wrong.pay(pair.pay_request(amount=1000, method=Method.BARCODE, auth_code=CODE))
    assert e.value.retriable and e.value.kind == "bad_signature"


@pytest.mark.parametrize(("mode", "kind"), [("http500", "http_5xx"), ("garbage", "garbage")])
async def test_provider_faults_are_retriable(pair, mode, kind):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{pair.base_url}/_sim/fault", json={"mode": mode}) as r:
            assert r.status == 200
    with pytest.raises(ChannelError) as e:
        await barcode(pair, 1000)
    assert e.value.retriable and e.value.kind == kind
