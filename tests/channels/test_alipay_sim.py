"""The Alipay adapter against its simulator, over real HTTP on loopback."""
from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.alipay import transformers as t
from channels.alipay.adapter import AlipayAdapter
from channels.base import (
    ChannelError,
    Method,
    Notification,
    NotificationRejected,
    PayRequest,
    RefundRequest,
    RefundStatus,
    TradeRef,
    TradeStatus,
)
from simulators.kit import OrderState
from tests.support.simpair import SimPair
from tests.support.helpers import business_today

AUTH_CODE = "286543210987654321"
BUYER = {"user_id": "2088102177846875"}


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alipay-keys")


def ref(req: PayRequest, channel_trade_no: str | None = None) -> TradeRef:
    return TradeRef(out_trade_no=req.out_trade_no, amount=req.amount, method=req.method,
                    channel_trade_no=channel_trade_no, sub_mch_id=req.sub_mch_id)


def refund_req(pair: SimPair, req: PayRequest, amount: int, out_refund_no: str | None = None) -> RefundRequest:
    return RefundRequest(out_refund_no=out_refund_no or "rfd_" + secrets.token_hex(12), out_trade_no=req.out_trade_no,
                         channel_trade_no=None, total_amount=req.amount, refund_amount=amount, reason="test",
                         notify_url=pair.notify_url("refund"))


async def paid_notification(pair: SimPair, req: PayRequest) -> Notification:
    note = await pair.next_notification()
    assert isinstance(note, Notification), note
    assert note.kind == "payment" and note.out_trade_no == req.out_trade_no
    assert note.amount == req.amount and note.merchant_ref == pair.adapter.settings.app_id
    assert note.payment is not None and note.payment.status is TradeStatus.SUCCEEDED
    return note


async def play_client(pair: SimPair, pay_params: dict[str, Any]) -> tuple[int, str]:
    """What the buyer's phone does with pay_params: open the wap URL, or hand the
    app's order string to Alipay."""
    async with aiohttp.ClientSession() as s:
        if "pay_url" in pay_params:
            async with s.get(pay_params["pay_url"]) as r:
                return r.status, await r.text()
        async with s.post(f"{pair.base_url}/gateway.do", data=pay_params["order_string"],
                          headers={"Content-Type": t.FORM_CONTENT_TYPE}) as r:
            return r.status, await r.text()


# -- every method ---------------------------------------------------------------------

async def test_barcode_succeeds(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1000, method=Method.BARCODE, auth_code=AUTH_CODE)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.SUCCEEDED
        assert res.amount == 1000 and res.channel_trade_no and res.paid_at is not None
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED


async def test_qr_pending_then_customer_scans_and_notification_arrives(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=2500, method=Method.QR)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.qr_code and res.qr_code.startswith("https://qr.alipay.com/")
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.PENDING
        await pair.customer_pays(qr_code=res.qr_code)
        note = await paid_notification(pair, req)
        assert note.payment is not None and note.payment.paid_at is not None and note.notification_id
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED


async def test_jsapi_creates_trade_then_buyer_pays(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=3300, method=Method.JSAPI, payer=BUYER)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.channel_trade_no
        assert res.pay_params == {"trade_no": res.channel_trade_no}
        await pair.customer_pays(out_trade_no=req.out_trade_no)
        await paid_notification(pair, req)


async def test_app_order_string_opened_by_client_then_paid(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=4400, method=Method.APP)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.pay_params and "order_string" in res.pay_params
        assert req.out_trade_no not in pair.state.orders              # nothing was sent to Alipay
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.PENDING   # TRADE_NOT_EXIST yet
        status, text = await play_client(pair, res.pay_params)
        answer = t.open_answer(text, t.APP_PAY)
        assert status == 200 and answer.body["code"] == "10000" and answer.sign
        assert answer.body["out_trade_no"] == req.out_trade_no
        await pair.customer_pays(out_trade_no=req.out_trade_no)
        await paid_notification(pair, req)


async def test_wap_pay_url_opened_by_browser_then_paid(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir, overrides={"extra": {"return_url": "https://shop/back"}}) as pair:
        req = pair.pay_request(amount=5500, method=Method.H5)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PENDING and res.pay_params
        url = res.pay_params["pay_url"]
        assert url.startswith(f"{pair.base_url}/gateway.do?")
        assert dict(parse_qsl(url.split("?", 1)[1]))["return_url"] == "https://shop/back"
        status, page = await play_client(pair, res.pay_params)
        assert status == 200 and "收银台" in page and req.out_trade_no in page
        await pair.customer_pays(out_trade_no=req.out_trade_no)
        await paid_notification(pair, req)


async def test_tampered_order_string_is_refused_by_alipay(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=100, method=Method.APP)
        res = await pair.adapter.pay(req)
        assert res.pay_params
        forged = res.pay_params["order_string"].replace("%221.00%22", "%220.01%22")
        assert forged != res.pay_params["order_string"]
        status, text = await play_client(pair, {"order_string": forged})
        answer = t.open_answer(text, t.APP_PAY)
        assert answer.body["sub_code"] == "isv.invalid-signature" and answer.sign is None
        assert req.out_trade_no not in pair.state.orders


# -- scenarios --------------------------------------------------------------------------

async def test_userpaying_then_success_after_queries(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1011, method=Method.BARCODE, auth_code=AUTH_CODE)
        res = await pair.adapter.pay(req)
        assert res.status is TradeStatus.PROCESSING and res.channel_trade_no
        seen = [(await pair.adapter.query(ref(req))).status for _ in range(3)]
        assert seen == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]


async def test_userpaying_forever_then_reverse(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1012, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
        for _ in range(4):
            assert (await pair.adapter.query(ref(req))).status is TradeStatus.PROCESSING
        res = await pair.adapter.reverse(ref(req))
        assert res.status is TradeStatus.REVERSED and not res.retry
        assert pair.state.orders[req.out_trade_no].state is OrderState.REVOKED
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.CLOSED


async def test_userpaying_forever_then_close(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1012, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.pay(req)).status is TradeStatus.PROCESSING
        assert (await pair.adapter.close(ref(req))).status is TradeStatus.CLOSED
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.CLOSED


async def test_unscanned_qr_is_closed_and_cannot_be_paid(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=700, method=Method.QR)
        res = await pair.adapter.pay(req)
        assert (await pair.adapter.close(ref(req))).status is TradeStatus.CLOSED
        assert "error" in await pair.customer_pays(qr_code=res.qr_code or "")
        # an app order never opened: Alipay has nothing to close yet, and its signed order string stays
        # payable until it expires, so "not found" is no proof of anything: NOT_FOUND, never CLOSED
        app = pair.pay_request(amount=700, method=Method.APP)
        await pair.adapter.pay(app)
        closed = await pair.adapter.close(ref(app))
        assert (closed.status, closed.failure_code) == (TradeStatus.NOT_FOUND, "ACQ.TRADE_NOT_EXIST")


async def test_closing_a_paid_trade_reports_it_paid(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=800, method=Method.BARCODE, auth_code=AUTH_CODE)
        await pair.adapter.pay(req)
        res = await pair.adapter.close(ref(req))
        assert (res.status, res.failure_code) == (TradeStatus.SUCCEEDED, "ACQ.TRADE_STATUS_ERROR")


async def test_reversing_a_paid_barcode_refunds_it(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=900, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
        assert (await pair.adapter.reverse(ref(req))).status is TradeStatus.REVERSED
        assert pair.state.orders[req.out_trade_no].extra["cancel_action"] == "refund"
        unknown = pair.pay_request(amount=900, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.reverse(ref(unknown))).status is TradeStatus.NOT_FOUND


async def test_declined_fails_with_alipay_sub_code(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1013, method=Method.BARCODE, auth_code=AUTH_CODE)
        res = await pair.adapter.pay(req)
        assert (res.status, res.failure_code) == (TradeStatus.FAILED, "ACQ.BUYER_BALANCE_NOT_ENOUGH")
        assert res.failure_message


async def test_invalid_auth_code_fails(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code="134567890123456789")
        res = await pair.adapter.pay(req)
        assert (res.status, res.failure_code) == (TradeStatus.FAILED, "ACQ.PAYMENT_AUTH_CODE_INVALID")


@pytest.mark.parametrize("amount,kind,then", [
    (1014, "system_error", TradeStatus.SUCCEEDED),   # 20000, the payment did go through
    (1019, "system_error", TradeStatus.CLOSED),      # 20000, no money taken
    (1015, "timeout", TradeStatus.SUCCEEDED),        # answered after paycore's timeout
])
async def test_unknown_outcome_is_retriable_then_query_tells(keys_dir: Path, amount: int, kind: str,
                                                             then: TradeStatus) -> None:
    async with SimPair.start("alipay", keys_dir, timeout=0.5, slow_seconds=1.0) as pair:
        req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=AUTH_CODE)
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(req)
        assert e.value.retriable and e.value.kind == kind
        assert (await pair.adapter.query(ref(req))).status is then


async def test_cancel_with_retry_flag_asks_to_call_again(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1014, method=Method.BARCODE, auth_code=AUTH_CODE)
        with pytest.raises(ChannelError):
            await pair.adapter.pay(req)
        first = await pair.adapter.reverse(ref(req))
        assert first.retry and first.status is TradeStatus.PROCESSING and first.failure_code == "ACQ.SYSTEM_ERROR"
        second = await pair.adapter.reverse(ref(req))
        assert second.status is TradeStatus.REVERSED and not second.retry


async def test_duplicate_notifications_parse_to_the_same_result(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1016, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
        notes = [await paid_notification(pair, req) for _ in range(3)]
        assert notes[0] == notes[1] == notes[2]      # same notify_id too: Alipay keeps it per event


async def test_out_of_order_notification_before_the_answer(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1017, method=Method.BARCODE, auth_code=AUTH_CODE)
        assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
        assert len(pair.notifications) == 1            # arrived before the synchronous answer
        await paid_notification(pair, req)
        await paid_notification(pair, req)


async def test_repeated_pay_is_idempotent_at_alipay(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1200, method=Method.BARCODE, auth_code=AUTH_CODE)
        first = await pair.adapter.pay(req)
        again = await pair.adapter.pay(req)
        assert first.status is again.status is TradeStatus.SUCCEEDED
        assert first.channel_trade_no == again.channel_trade_no
        assert pair.state.orders[req.out_trade_no].pay_calls == 2


async def test_query_of_an_unknown_barcode_is_not_found(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
        res = await pair.adapter.query(ref(req))
        assert (res.status, res.failure_code) == (TradeStatus.NOT_FOUND, "ACQ.TRADE_NOT_EXIST")


# -- notifications ------------------------------------------------------------------------

async def test_forged_notifications_are_rejected(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=600, method=Method.QR)
        await pair.adapter.pay(req)
        await pair.customer_pays(out_trade_no=req.out_trade_no)
        await paid_notification(pair, req)
        assert pair.state.notify_builder is not None
        _, headers, body = pair.state.notify_builder(pair.state.orders[req.out_trade_no], None)
        genuine = dict(parse_qsl(body.decode()))
        assert isinstance(await pair.adapter.parse_notification("payment", headers, body), Notification)

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        wrong_key = dict(genuine, sign=t.rsa2_sign(other, t.notify_sign_content(genuine)))
        forgeries = [
            dict(genuine, total_amount="0.01"),                       # tampered body
            wrong_key,                                                # signed by someone else
            {k: v for k, v in genuine.items() if k != "sign"},        # unsigned
            dict(genuine, sign_type="RSA"),                           # a weaker algorithm
        ]
        for forged in forgeries:
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", headers, urlencode(forged).encode())
            assert e.value.reason == "bad_signature"
        for junk in (b"\xff\xfe", b"", b"a=1&&=", b"{}"):
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", headers, junk)
            assert e.value.reason in ("malformed", "bad_signature")
        assert pair.adapter.ack(True).body == b"success" and pair.adapter.ack(False).body == b"failure"


# -- refunds ------------------------------------------------------------------------------

async def test_partial_then_full_refund(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1000, method=Method.BARCODE, auth_code=AUTH_CODE)
        await pair.adapter.pay(req)
        part = refund_req(pair, req, 300)
        assert (await pair.adapter.refund(part)).status is RefundStatus.SUCCEEDED
        assert (await pair.adapter.query_refund(part)).status is RefundStatus.SUCCEEDED
        note = await pair.next_notification()           # Alipay notifies the trade's notify_url
        assert isinstance(note, Notification) and note.kind == "refund" and note.out_refund_no == part.out_refund_no
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED

        too_much = await pair.adapter.refund(refund_req(pair, req, 701))
        assert (too_much.status, too_much.failure_code) == (RefundStatus.FAILED, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
        rest = refund_req(pair, req, 700)
        assert (await pair.adapter.refund(rest)).status is RefundStatus.SUCCEEDED
        # a repeat answers fund_change=N and is confirmed by the refund query
        assert (await pair.adapter.refund(rest)).status is RefundStatus.SUCCEEDED
        assert pair.state.orders[req.out_trade_no].refunded == 1000
        # fully refunded: TRADE_CLOSED, but it was paid
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED


async def test_refund_declined(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=1018, method=Method.BARCODE, auth_code=AUTH_CODE)
        await pair.adapter.pay(req)
        rr = refund_req(pair, req, 18)
        res = await pair.adapter.refund(rr)
        assert (res.status, res.failure_code) == (RefundStatus.FAILED, "ACQ.SELLER_BALANCE_NOT_ENOUGH")
        queried = await pair.adapter.query_refund(rr)
        # a refund Alipay has no record of is not proof it failed (it may still land): NOT_FOUND
        assert (queried.status, queried.failure_code) == (RefundStatus.NOT_FOUND, t.REFUND_NOT_EXIST)


# -- statement ----------------------------------------------------------------------------

async def test_statement_lists_the_days_payments_and_refunds(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        a = pair.pay_request(amount=1234, method=Method.BARCODE, auth_code=AUTH_CODE)
        b = pair.pay_request(amount=2000, method=Method.QR)
        c = pair.pay_request(amount=500, method=Method.BARCODE, auth_code=AUTH_CODE)
        unpaid = pair.pay_request(amount=300, method=Method.QR)
        await pair.adapter.pay(a)
        await pair.adapter.pay(b)
        await pair.adapter.pay(c)
        await pair.adapter.pay(unpaid)
        await pair.customer_pays(out_trade_no=b.out_trade_no)
        rr = refund_req(pair, a, 234)
        await pair.adapter.refund(rr)
        await pair.adapter.reverse(ref(c))             # cancel of a paid trade refunds it
        lines = await pair.adapter.statement(business_today())
        got = sorted((ln.kind, ln.out_trade_no, ln.amount, ln.status, ln.out_refund_no) for ln in lines)
        assert got == sorted([
            ("payment", a.out_trade_no, 1234, "SUCCEEDED", None),
            ("payment", b.out_trade_no, 2000, "SUCCEEDED", None),
            ("payment", c.out_trade_no, 500, "SUCCEEDED", None),
            ("refund", a.out_trade_no, 234, "REFUNDED", rr.out_refund_no),
            ("refund", c.out_trade_no, 500, "REVERSED", None),
        ])
        assert all(ln.channel_trade_no for ln in lines)
        assert await pair.adapter.statement(datetime(2999, 1, 1).date()) == []


# -- protocol -----------------------------------------------------------------------------

async def test_request_signed_with_the_wrong_key_is_refused_as_alipay_does(keys_dir: Path, tmp_path: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = tmp_path / "other_private.pem"
        key_file.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        settings = dataclasses.replace(pair.adapter.settings, private_key_file=str(key_file))
        impostor = AlipayAdapter(settings, pair.adapter.http)
        req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
        with pytest.raises(ChannelError) as e:
            await impostor.pay(req)
        assert not e.value.retriable and e.value.kind == "rejected" and "isv.invalid-signature" in str(e.value)
        assert req.out_trade_no not in pair.state.orders


async def test_answers_verify_in_every_layout_over_their_raw_text(keys_dir: Path) -> None:
    """The simulator rotates three JSON layouts; each must verify over the raw
    member text, and a re-serialisation of the parsed member would not."""
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=100, method=Method.QR)
        await pair.adapter.pay(req)
        key = t.load_private_key(Path(pair.adapter.settings.private_key_file).read_text())
        alipay_pub = t.load_public_key(Path(pair.adapter.settings.provider_public_key_file).read_text())
        texts = []
        async with aiohttp.ClientSession() as s:
            for _ in range(3):
                params = t.sign_params(t.common_params(
                    app_id=pair.adapter.settings.app_id, api_method=t.QUERY, biz=t.trade_biz(req.out_trade_no),
                    timestamp=datetime.now(timezone.utc)), key)
                async with s.post(f"{pair.base_url}/gateway.do", data=params) as r:
                    texts.append(await r.text())
        assert len(set(texts)) == 3
        for text in texts:
            ans = t.open_answer(text, t.QUERY)
            assert ans.sign and t.rsa2_verify(alipay_pub, ans.raw, ans.sign)
        reserialised = [t.open_answer(x, t.QUERY) for x in texts]
        assert any(not t.rsa2_verify(alipay_pub, t.biz_json(a.body), a.sign or "") for a in reserialised)
        for _ in range(3):   # and the adapter gets through all three
            assert (await pair.adapter.query(ref(req))).status is TradeStatus.PENDING


async def test_http_500_and_garbage_are_retriable_faults(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE)
        async with aiohttp.ClientSession() as s:
            for mode, kind in (("http500", "http_5xx"), ("garbage", "garbage")):
                async with s.post(f"{pair.base_url}/_sim/fault", json={"mode": mode}):
                    pass
                with pytest.raises(ChannelError) as e:
                    await pair.adapter.query(ref(req))
                assert e.value.retriable and e.value.kind == kind
            async with s.post(f"{pair.base_url}/_sim/fault", json={"mode": None}):
                pass


async def test_sub_merchant_travels_in_biz_content(keys_dir: Path) -> None:
    async with SimPair.start("alipay", keys_dir) as pair:
        req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=AUTH_CODE, sub_mch_id="2088000000000001")
        assert (await pair.adapter.pay(req)).status is TradeStatus.SUCCEEDED
        order = pair.state.orders[req.out_trade_no]
        assert order.extra["sub_merchant"] == {"merchant_id": "2088000000000001"}
        assert order.extra["app_auth_token"] is None


async def test_sub_merchant_as_app_auth_token(keys_dir: Path) -> None:
    overrides = {"extra": {"sub_merchant_mode": "app_auth_token"}}
    async with SimPair.start("alipay", keys_dir, overrides=overrides) as pair:
        req = pair.pay_request(amount=100, method=Method.QR, sub_mch_id="202401BB2dd6e1a0b4e64c1c")
        assert (await pair.adapter.pay(req)).status is TradeStatus.PENDING
        order = pair.state.orders[req.out_trade_no]
        assert order.extra["app_auth_token"] == "202401BB2dd6e1a0b4e64c1c" and order.extra["sub_merchant"] is None
