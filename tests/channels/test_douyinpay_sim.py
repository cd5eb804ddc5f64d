"""The Douyin Pay adapter against its simulator over real HTTP (tests.support.simpair).

Douyin has no barcode API: the scenarios are played on native (QR) orders,
whose outcome the customer decides and the notification or a query reports.
"""
from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import (
    ChannelError, Method, NotificationRejected, RefundRequest, RefundStatus, TradeRef, TradeStatus,
    UnsupportedFlow,
)
from channels.wxv3 import crypto
from tests.channels.test_wechatpay_sim import impostor, next_note, pair_fixtures
from tests.support.simpair import SimPair
from tests.support.helpers import business_today


keys, pair = pair_fixtures("douyinpay")


async def qr_order(pair: SimPair, amount: int):
    req = pair.pay_request(amount=amount, method=Method.QR)
    return req, await pair.adapter.pay(req)


def trade(req) -> TradeRef:
    return TradeRef(req.out_trade_no, req.amount, req.method)


def refund_of(pair: SimPair, req, amount: int) -> RefundRequest:
    return RefundRequest("rfd_" + secrets.token_hex(12), req.out_trade_no, None, req.amount, amount, None,
                         pair.notify_url("refund"))


async def test_qr_order_is_paid_and_notified(pair):
    req, res = await qr_order(pair, 4200)
    assert res.status is TradeStatus.PENDING and res.qr_code.startswith("https://pay.douyinpay.com/qr/")
    await pair.customer_pays(qr_code=res.qr_code)
    note = await next_note(pair, req.out_trade_no)
    assert (note.amount, note.payment.status, note.merchant_ref) == (4200, TradeStatus.SUCCEEDED, "7000000000001")
    assert (await pair.adapter.query(trade(req))).status is TradeStatus.SUCCEEDED


@pytest.mark.parametrize("method, field", [(Method.JSAPI, "paySign"), (Method.APP, "sign"), (Method.H5, "h5_url")])
async def test_in_app_orders_then_customer_pays(pair, method, field):
    req = pair.pay_request(amount=990, method=method, payer={"openid": "dy_open_1"})
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING and res.pay_params[field]
    if method is Method.JSAPI:
        assert res.pay_params["signType"] == "DouyinPay-RSA"
    await pair.customer_pays(out_trade_no=req.out_trade_no)
    assert (await next_note(pair, req.out_trade_no)).payment.status is TradeStatus.SUCCEEDED


async def test_barcode_is_unsupported(pair):
    with pytest.raises(UnsupportedFlow):
        await pair.adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code="134567890123456789"))


async def test_unpaid_order_is_closed(pair):
    req, _ = await qr_order(pair, 1012)
    assert (await pair.adapter.query(trade(req))).status is TradeStatus.PENDING
    assert (await pair.adapter.close(trade(req))).status is TradeStatus.CLOSED
    assert (await pair.adapter.query(trade(req))).status is TradeStatus.CLOSED


async def test_declined_payment_is_failed_with_payerror(pair):
    req, res = await qr_order(pair, 1013)
    await pair.customer_pays(qr_code=res.qr_code)
    note = await next_note(pair, req.out_trade_no)
    assert (note.payment.status, note.payment.failure_code) == (TradeStatus.FAILED, "PAYERROR")


async def order_survives_unknown_outcome(pair: SimPair, amount: int, kind: str) -> None:
    """The order answer is a retriable fault of ``kind``, yet the order exists: a query finds it
    pending, and once the customer pays, paid."""
    req = pair.pay_request(amount=amount, method=Method.QR)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == kind
    assert (await pair.adapter.query(trade(req))).status is TradeStatus.PENDING
    await pair.customer_pays(out_trade_no=req.out_trade_no)
    assert (await pair.adapter.query(trade(req))).status is TradeStatus.SUCCEEDED


async def test_system_error_then_query_and_payment(pair):
    await order_survives_unknown_outcome(pair, 1014, "system_error")


async def test_slow_answer_times_out_then_query_finds_the_order(keys):
    async with SimPair.start("douyinpay", keys, timeout=0.5, slow_seconds=1.0) as pair:
        await order_survives_unknown_outcome(pair, 1015, "timeout")


async def test_duplicate_notifications_parse_alike(pair):
    req, res = await qr_order(pair, 1016)
    await pair.customer_pays(qr_code=res.qr_code)
    notes = [await next_note(pair, req.out_trade_no) for _ in range(3)]
    assert len({(n.amount, n.payment.status, n.payment.channel_trade_no, n.notification_id) for n in notes}) == 1


async def test_forged_notifications_are_rejected(pair):
    req, _ = await qr_order(pair, 700)
    order = pair.state.get(req.out_trade_no)
    pair.state.mark_paid(order, notify=False)
    _, headers, body = pair.state.notify_builder(order, None)
    assert (await pair.adapter.parse_notification("payment", headers, body)).amount == 700
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = dict(headers, **{"Douyinpay-Signature": crypto.rsa_sign(stranger, crypto.response_message(
        headers["Douyinpay-Timestamp"], headers["Douyinpay-Nonce"], body))})
    for h, b in ((headers, body.replace(b'"id":"EV-', b'"id":"XX-')), (forged, body)):
        with pytest.raises(NotificationRejected) as e:
            await pair.adapter.parse_notification("payment", h, b)
        assert e.value.reason == "bad_signature"


async def test_partial_and_full_refunds_and_a_declined_one(pair):
    req, res = await qr_order(pair, 2000)
    await pair.customer_pays(qr_code=res.qr_code)
    first, second = refund_of(pair, req, 500), refund_of(pair, req, 1500)
    for rf in (first, second):
        assert (await pair.adapter.refund(rf)).status is RefundStatus.PROCESSING
        note = await next_note(pair, req.out_trade_no, "refund")
        assert (note.out_refund_no, note.amount, note.refund.status) == (
            rf.out_refund_no, rf.refund_amount, RefundStatus.SUCCEEDED)
    assert (await pair.adapter.query_refund(second)).status is RefundStatus.SUCCEEDED
    declined_req, declined_res = await qr_order(pair, 1018)
    await pair.customer_pays(qr_code=declined_res.qr_code)
    refused = await pair.adapter.refund(refund_of(pair, declined_req, 1018))
    assert (refused.status, refused.failure_code) == (RefundStatus.FAILED, "NOT_ENOUGH")


async def test_statement_lists_the_days_payments_and_refunds(pair):
    req, res = await qr_order(pair, 3300)
    await pair.customer_pays(qr_code=res.qr_code)
    rf = refund_of(pair, req, 1100)
    await pair.adapter.refund(rf)
    await next_note(pair, req.out_trade_no, "refund")
    lines = await pair.adapter.statement(business_today())
    got = {(l.kind, l.out_trade_no, l.out_refund_no, l.amount) for l in lines}
    assert {("payment", req.out_trade_no, None, 3300), ("refund", req.out_trade_no, rf.out_refund_no, 1100)} <= got


async def test_wrong_key_is_refused_with_sign_error(pair, tmp_path):
    req = pair.pay_request(amount=100, method=Method.APP)
    async with impostor(pair, tmp_path) as adapter:
        with pytest.raises(ChannelError) as e:
            await adapter.pay(req)
    assert e.value.kind == "auth" and not e.value.retriable and "SIGN_ERROR" in str(e.value)
    assert pair.state.get(req.out_trade_no) is None


async def test_sub_merchant_is_refused_before_sending(pair):
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(pair.pay_request(amount=100, method=Method.QR, sub_mch_id="7000000000002"))
    assert e.value.kind == "unsupported" and not e.value.retriable
