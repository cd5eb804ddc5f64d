"""The WeChat Pay adapter against its simulator over real HTTP (tests.support.simpair)."""
from __future__ import annotations

import dataclasses
import secrets
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import (
    ChannelAdapter, ChannelError, Method, Notification, NotificationRejected, RefundRequest, RefundStatus, TradeRef,
    TradeStatus,
)
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.registry import ADAPTERS
from tests.support.simpair import SimPair
from tests.support.helpers import business_today

AUTH_CODE = "134567890123456789"


def pair_fixtures(name: str):
    """Module-scoped ``keys`` and ``pair`` fixtures for one channel (also used by the Douyin tests).

    devkeys reuses keys found in the directory, and one simulator serves the
    module: orders are independent (fresh ids) and notifications are picked
    by payment (:func:`next_note`), which keeps the tests fast.
    """
    @pytest.fixture(scope="module")
    def keys(tmp_path_factory):
        return tmp_path_factory.mktemp(f"{name}-keys")

    @pytest.fixture(scope="module")
    async def pair(keys):
        async with SimPair.start(name, keys) as p:
            yield p

    return keys, pair


keys, pair = pair_fixtures("wechatpay")


def ref(res_no: str, amount: int, method: Method = Method.BARCODE, **kw) -> TradeRef:
    return TradeRef(out_trade_no=res_no, amount=amount, method=method, **kw)


def refund_request(pair: SimPair, out_trade_no: str, total: int, amount: int, **kw) -> RefundRequest:
    return RefundRequest(out_refund_no="rfd_" + secrets.token_hex(12), out_trade_no=out_trade_no,
                         channel_trade_no=None, total_amount=total, refund_amount=amount, reason="test",
                         notify_url=pair.notify_url("refund"), **kw)


async def next_note(pair: SimPair, out_trade_no: str, kind: str = "payment") -> Notification:
    """The next parsed notification about this payment (others' stragglers are skipped)."""
    while True:
        note = await pair.next_notification()
        if isinstance(note, Notification) and (note.out_trade_no, note.kind) == (out_trade_no, kind):
            return note


async def test_barcode_payment_succeeds(pair):
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.SUCCEEDED and res.amount == 100 and res.channel_trade_no
    assert (await pair.adapter.query(ref(req.out_trade_no, 100))).status is TradeStatus.SUCCEEDED


async def test_qr_payment_completes_by_notification(pair):
    req = pair.pay_request(amount=250, method=Method.QR)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING and res.qr_code.startswith("weixin://wxpay/bizpayurl?pr=")
    assert (await pair.adapter.query(ref(req.out_trade_no, 250, Method.QR))).status is TradeStatus.PENDING
    await pair.customer_pays(qr_code=res.qr_code)
    note = await next_note(pair, req.out_trade_no)
    assert (note.kind, note.out_trade_no, note.amount) == ("payment", req.out_trade_no, 250)
    assert note.payment.status is TradeStatus.SUCCEEDED and note.merchant_ref == pair.adapter.settings.mch_id


@pytest.mark.parametrize("method, key", [(Method.JSAPI, "paySign"), (Method.APP, "sign"), (Method.H5, "h5_url")])
async def test_in_app_order_gives_client_parameters_then_customer_pays(pair, method, key):
    req = pair.pay_request(amount=300, method=method, payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING and res.pay_params[key]
    await pair.customer_pays(out_trade_no=req.out_trade_no)
    note = await next_note(pair, req.out_trade_no)
    assert (note.out_trade_no, note.amount, note.payment.status) == (req.out_trade_no, 300, TradeStatus.SUCCEEDED)


async def test_jsapi_without_openid_is_declined_as_param_error(pair):
    res = await pair.adapter.pay(pair.pay_request(amount=300, method=Method.JSAPI))
    assert (res.status, res.failure_code) == (TradeStatus.FAILED, "PARAM_ERROR")


async def test_userpaying_then_success_after_queries(pair):
    req = pair.pay_request(amount=1011, method=Method.BARCODE, auth_code=AUTH_CODE)
    assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
    seen = [(await pair.adapter.query(ref(req.out_trade_no, 1011))).status for _ in range(3)]
    assert seen == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]


async def test_userpaying_forever_then_reverse(pair):
    req = pair.pay_request(amount=1012, method=Method.BARCODE, auth_code=AUTH_CODE)
    assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
    for _ in range(4):
        assert (await pair.adapter.query(ref(req.out_trade_no, 1012))).status is TradeStatus.PROCESSING
    assert (await pair.adapter.reverse(ref(req.out_trade_no, 1012))).status is TradeStatus.REVERSED
    assert (await pair.adapter.query(ref(req.out_trade_no, 1012))).status is TradeStatus.REVERSED
    assert (await pair.sim_order(req.out_trade_no))["reverse_calls"] == 1


async def test_userpaying_forever_then_close(pair):
    req = pair.pay_request(amount=1012, method=Method.BARCODE, auth_code=AUTH_CODE)
    await pair.adapter.pay(req)
    assert (await pair.adapter.close(ref(req.out_trade_no, 1012))).status is TradeStatus.CLOSED
    assert (await pair.adapter.query(ref(req.out_trade_no, 1012))).status is TradeStatus.CLOSED


async def test_close_of_a_paid_order_reports_it_paid(pair):
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
    await pair.adapter.pay(req)
    assert (await pair.adapter.close(ref(req.out_trade_no, 100))).status is TradeStatus.SUCCEEDED


async def test_declined_barcode_is_failed_with_notenough(pair):
    res = await pair.adapter.pay(pair.pay_request(amount=1013, method=Method.BARCODE, auth_code=AUTH_CODE))
    assert (res.status, res.failure_code) == (TradeStatus.FAILED, "NOTENOUGH")


async def test_invalid_auth_code_is_declined(pair):
    res = await pair.adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code="28763443825664394"))
    assert (res.status, res.failure_code) == (TradeStatus.FAILED, "AUTH_CODE_INVALID")


async def unknown_outcome_then_query(pair: SimPair, amount: int, kind: str):
    """Pay a barcode whose answer is a retriable fault of ``kind``; the query after it tells."""
    req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=AUTH_CODE)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == kind
    return await pair.adapter.query(ref(req.out_trade_no, amount))


@pytest.mark.parametrize("amount, status, code", [(1014, TradeStatus.SUCCEEDED, None),
                                                  (1019, TradeStatus.FAILED, "PAYERROR")])
async def test_system_error_then_query_tells_the_outcome(pair, amount, status, code):
    res = await unknown_outcome_then_query(pair, amount, "system_error")
    assert (res.status, res.failure_code) == (status, code)


async def test_slow_answer_times_out_then_query_succeeds(keys):
    async with SimPair.start("wechatpay", keys, timeout=0.5, slow_seconds=1.0) as pair:
        assert (await unknown_outcome_then_query(pair, 1015, "timeout")).status is TradeStatus.SUCCEEDED


async def test_query_of_an_unknown_order_is_not_found(pair):
    assert (await pair.adapter.query(ref("pay_" + "0" * 24, 100))).status is TradeStatus.NOT_FOUND


async def test_duplicate_notifications_parse_alike(pair):
    req = pair.pay_request(amount=1016, method=Method.QR)
    res = await pair.adapter.pay(req)
    await pair.customer_pays(qr_code=res.qr_code)
    notes = [await next_note(pair, req.out_trade_no) for _ in range(3)]
    assert len({(n.out_trade_no, n.amount, n.payment.status, n.notification_id) for n in notes}) == 1


async def test_forged_notifications_are_rejected(pair):
    req = pair.pay_request(amount=200, method=Method.QR)
    await pair.adapter.pay(req)
    order = pair.state.get(req.out_trade_no)
    pair.state.mark_paid(order, notify=False)
    url, headers, body = pair.state.notify_builder(order, None)
    assert (await pair.adapter.parse_notification("payment", headers, body)).payment.status is TradeStatus.SUCCEEDED

    tampered = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCES"')
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from channels.wxv3 import crypto
    resigned = dict(headers, **{"Wechatpay-Signature": crypto.rsa_sign(other, crypto.response_message(
        headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body))})
    for h, b in ((headers, tampered), (resigned, body)):
        with pytest.raises(NotificationRejected) as e:
            await pair.adapter.parse_notification("payment", h, b)
        assert e.value.reason == "bad_signature"
    # posted over HTTP, the forgery is refused the WeChat way (not 2xx, code FAIL) with a 4xx: the
    # sender's fault, which must not page the operators through the 5xx alert
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=tampered, headers=headers) as r:
            assert r.status == 400 and (await r.json())["code"] == "FAIL"


async def test_full_and_partial_refunds(pair):
    req = pair.pay_request(amount=1000, method=Method.BARCODE, auth_code=AUTH_CODE)
    await pair.adapter.pay(req)
    part = refund_request(pair, req.out_trade_no, 1000, 300)
    assert (await pair.adapter.refund(part)).status is RefundStatus.PROCESSING
    note = await next_note(pair, req.out_trade_no, "refund")
    assert (note.kind, note.out_refund_no, note.amount, note.refund.status) == (
        "refund", part.out_refund_no, 300, RefundStatus.SUCCEEDED)
    assert (await pair.adapter.query_refund(part)).status is RefundStatus.SUCCEEDED
    rest = refund_request(pair, req.out_trade_no, 1000, 700)
    assert (await pair.adapter.refund(rest)).status is RefundStatus.PROCESSING
    assert (await next_note(pair, req.out_trade_no, "refund")).amount == 700
    too_much = await pair.adapter.refund(refund_request(pair, req.out_trade_no, 1000, 1))
    assert (too_much.status, too_much.failure_code) == (RefundStatus.FAILED, "INVALID_REQUEST")
    assert (await pair.sim_order(req.out_trade_no))["refunded"] == 1000
    # a refunded payment is still a payment that happened
    assert (await pair.adapter.query(ref(req.out_trade_no, 1000))).status is TradeStatus.SUCCEEDED


async def test_refund_declined(pair):
    req = pair.pay_request(amount=1018, method=Method.BARCODE, auth_code=AUTH_CODE)
    await pair.adapter.pay(req)
    res = await pair.adapter.refund(refund_request(pair, req.out_trade_no, 1018, 1018))
    assert (res.status, res.failure_code) == (RefundStatus.FAILED, "NOT_ENOUGH")


async def test_statement_lists_the_days_payments_and_refunds(pair):
    paid = pair.pay_request(amount=1234, method=Method.BARCODE, auth_code=AUTH_CODE)
    await pair.adapter.pay(paid)
    qr = pair.pay_request(amount=5600, method=Method.QR)
    await pair.customer_pays(qr_code=(await pair.adapter.pay(qr)).qr_code)
    rf = refund_request(pair, paid.out_trade_no, 1234, 234)
    await pair.adapter.refund(rf)
    await next_note(pair, paid.out_trade_no, "refund")  # the refund is done
    lines = await pair.adapter.statement(business_today())
    got = {(l.kind, l.out_trade_no, l.out_refund_no, l.amount, l.status) for l in lines}
    assert got >= {("payment", paid.out_trade_no, None, 1234, "SUCCEEDED"),
                   ("payment", qr.out_trade_no, None, 5600, "SUCCEEDED"),
                   ("refund", paid.out_trade_no, rf.out_refund_no, 234, "REFUNDED")}


async def test_statement_of_a_day_without_trades_is_empty(pair):
    assert await pair.adapter.statement(datetime(2001, 1, 1).date()) == []


@asynccontextmanager
async def impostor(pair: SimPair, tmp_path: Path) -> AsyncIterator[ChannelAdapter]:
    """The pair's adapter with everything right but its private key (also used by the Douyin tests)."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "other.pem").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(tmp_path / "other.pem"))
    async with ProviderClient() as session:
        yield ADAPTERS[pair.name](settings, ChannelHttp(session, pair.name, 1.0))


async def test_request_signed_with_the_wrong_key_is_refused_with_sign_error(pair, tmp_path):
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
    async with impostor(pair, tmp_path) as adapter:
        with pytest.raises(ChannelError) as e:
            await adapter.pay(req)
    assert not e.value.retriable and e.value.kind == "auth" and "SIGN_ERROR" in str(e.value)
    assert pair.state.get(req.out_trade_no) is None


@pytest.mark.parametrize("fault, kind", [("http500", "http_5xx"), ("garbage", "bad_signature")])
async def test_provider_faults_are_retriable(pair, fault, kind):
    async with aiohttp.ClientSession() as s:
        await s.post(f"{pair.base_url}/_sim/fault", json={"mode": fault})
        try:
            with pytest.raises(ChannelError) as e:
                await pair.adapter.query(ref("pay_" + "1" * 24, 100))
        finally:
            await s.post(f"{pair.base_url}/_sim/fault", json={"mode": None})
    assert e.value.retriable and e.value.kind == kind


async def test_service_provider_mode_for_a_sub_merchant(pair):
    req = pair.pay_request(amount=800, method=Method.QR, sub_mch_id="1900000111")
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING
    await pair.customer_pays(qr_code=res.qr_code)
    note = await next_note(pair, req.out_trade_no)
    assert (note.out_trade_no, note.amount, note.merchant_ref) == (req.out_trade_no, 800, pair.adapter.settings.mch_id)
    sub = ref(req.out_trade_no, 800, Method.QR, sub_mch_id="1900000111")
    assert (await pair.adapter.query(sub)).status is TradeStatus.SUCCEEDED
    # the same order is not the direct merchant's
    assert (await pair.adapter.query(ref(req.out_trade_no, 800, Method.QR))).status is TradeStatus.NOT_FOUND
    rf = refund_request(pair, req.out_trade_no, 800, 800, sub_mch_id="1900000111")
    assert (await pair.adapter.refund(rf)).status is RefundStatus.PROCESSING
    assert (await next_note(pair, req.out_trade_no, "refund")).refund.status is RefundStatus.SUCCEEDED


async def test_service_provider_barcode_and_reverse(pair):
    req = pair.pay_request(amount=1012, method=Method.BARCODE, auth_code=AUTH_CODE, sub_mch_id="1900000111")
    assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
    sub = ref(req.out_trade_no, 1012, sub_mch_id="1900000111")
    assert (await pair.adapter.reverse(sub)).status is TradeStatus.REVERSED
    assert (await pair.adapter.query(sub)).status is TradeStatus.REVERSED
