"""Bestpay adapter against its simulator over real HTTP (scenarios by amount % 100).

The barcode scenarios are shared (tests/channels/test_barcode_scenarios.py, with
the checks in tests/support/channel_checks.py: same engine contract, another
wire); this file has what is Bestpay's own.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web

from channels.base import ChannelError, Method, NotificationRejected, TradeRef, UnsupportedFlow
from channels.bestpay import transformers as tf
from channels.bestpay.adapter import BestpayAdapter
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.secrets import Secret
from tests.support.channel_checks import barcode, check_forged_answer_is_rejected, refund_req
from tests.support.simpair import SimPair

CODE = "511234567890123456"   # routes to bestpay (^51\d{16}$)


async def test_only_barcode_is_offered(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        with pytest.raises(UnsupportedFlow):
            await pair.adapter.pay(pair.pay_request(amount=100, method=Method.QR))
        with pytest.raises(UnsupportedFlow):
            await pair.adapter.close(TradeRef("pay_x", 1, Method.BARCODE))


async def test_forged_notifications_are_rejected(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        key = (keys / "bestpay" / "secret").read_text().strip()
        form = {"MERCHANTID": pair.adapter.settings.mch_id, "UPTRANSEQ": "BP1", "ORDERSEQ": "payX" + "0" * 24,
                "ORDERREQTRANSEQ": "payX" + "0" * 24, "ORDERAMOUNT": "100", "RETNCODE": "0000", "TRANDATE": "20240101"}
        genuine = urlencode(dict(form, SIGN=tf.mac(tf.PAY_NOTIFY_MAC, form, key))).encode()
        note = await pair.adapter.parse_notification("payment", {}, genuine)
        assert note.out_trade_no == "pay_" + "0" * 24 and note.amount == 100

        wrong_key = urlencode(dict(form, SIGN=tf.mac(tf.PAY_NOTIFY_MAC, form, "not-the-key"))).encode()
        tampered = genuine.replace(b"ORDERAMOUNT=100", b"ORDERAMOUNT=1")
        unsigned = urlencode(form).encode()
        other_merchant = dict(form, MERCHANTID="999")
        foreign = urlencode(dict(other_merchant, SIGN=tf.mac(tf.PAY_NOTIFY_MAC, other_merchant, key))).encode()
        for body, reason in ((wrong_key, "bad_signature"), (tampered, "bad_signature"), (unsigned, "bad_signature"),
                             (foreign, "unknown_merchant"), (b"\xff\xfe", "malformed")):
            with pytest.raises(NotificationRejected) as e:
                await pair.adapter.parse_notification("payment", {}, body)
            assert e.value.reason == reason


async def test_request_with_wrong_key_is_refused_with_mac_error(keys: Path) -> None:
    async with SimPair.start("bestpay", keys) as pair:
        settings = dataclasses.replace(pair.adapter.settings, secret=Secret("W" * 32))
        async with ProviderClient() as session:
            wrong = BestpayAdapter(settings, ChannelHttp(session, "bestpay", 2.0))
            req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=CODE)
            with pytest.raises(ChannelError) as e:
                await wrong.pay(req)
            assert not e.value.retriable and e.value.kind == "auth"
            paid, _ = await barcode(pair, 300, CODE)
            with pytest.raises(ChannelError):
                await wrong.refund(refund_req(pair, paid, 300))
        assert req.out_trade_no not in pair.state.orders
        assert (await pair.sim_order(paid.out_trade_no))["refunded"] == 0


async def test_answer_with_a_wrong_sign_is_rejected(keys: Path) -> None:
    # a man in the middle answering "paid" without the merchant key
    async def forged(request: web.Request) -> web.Response:
        result = {"merchantId": "043101180050000", "ourTransNo": "BP1", "transAmt": "100", "transStatus": "B",
                  "sign": "0" * 32}
        return web.json_response({"success": True, "result": result, "errorCode": None, "errorMsg": None})

    async with SimPair.start("bestpay", keys) as pair:
        await check_forged_answer_is_rejected(pair, CODE, {"/barcode/placeOrder": forged})
