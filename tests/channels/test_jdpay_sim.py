"""JD Pay adapter against its simulator over real HTTP (scenarios by amount % 100).

The barcode scenarios are shared (tests/channels/test_barcode_scenarios.py);
this file has what is JD Pay's own.
"""
from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.base import ChannelError, Method, Notification, NotificationRejected, RefundStatus, TradeStatus
from channels.client import ProviderClient
from channels.http import ChannelHttp
from channels.jdpay import transformers as tf
from channels.jdpay.adapter import JdPayAdapter, load_private_key
from tests.support.channel_checks import barcode, check_forged_answer_is_rejected, ref, refund_req
from tests.support.simpair import SimPair

CODE = "181234567890123456"   # routes to jdpay (^18\d{16}$)


async def test_refund_can_be_queried(keys: Path) -> None:
    async with SimPair.start("jdpay", keys) as pair:
        req, _ = await barcode(pair, 600, CODE)
        r = refund_req(pair, req, 600)
        await pair.adapter.refund(r)
        assert (await pair.adapter.query_refund(r)).status is RefundStatus.SUCCEEDED
        unknown = await pair.adapter.query_refund(refund_req(pair, req, 1, 7))
        assert unknown.status is RefundStatus.FAILED and unknown.failure_code == tf.CODE_NOT_FOUND


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
        async with ProviderClient() as session:
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

        await check_forged_answer_is_rejected(pair, CODE, {"/service/fkmPay": forged})
