"""Apple Pay, Huawei Pay and Samsung Pay adapters against their simulators (UnionPay ACP underneath)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from channels.applepay.adapter import ApplePayAdapter
from channels.base import (
    ChannelError,
    Method,
    NfcData,
    PayRequest,
    RefundRequest,
    RefundStatus,
    TradeStatus,
)
from channels.unionpay.adapter import UnionPayAdapter
from tests.channels.test_unionpay_sim import note_for, ref
from tests.support.simpair import SimPair
from tests.support.helpers import business_today

WALLETS = ["applepay", "huaweipay", "samsungpay"]
SE_TYPES = {"applepay": None, "huaweipay": "04", "samsungpay": "02"}
TOKEN = "6225880000000002"
CRYPTOGRAM = "A1B2C3D4E5F60718"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wallet-keys")


@pytest.fixture(params=WALLETS)
async def pair(request, keys: Path):
    async with SimPair.start(request.param, keys) as p:
        yield p


def tap(pair: SimPair, amount: int, wallet: str | None) -> PayRequest:
    nfc = NfcData(token=TOKEN, expiry="2911", cryptogram=CRYPTOGRAM, wallet=wallet,
                  emv_data="9F02060000000001009F1A020156")
    return pair.pay_request(amount=amount, method=Method.NFC, nfc=nfc)


async def test_tap_succeeds_and_records_the_wallet(pair):
    req = tap(pair, 1000, pair.name)
    res = await pair.adapter.pay(req)
    assert (res.status, res.amount, res.wallet) == (TradeStatus.SUCCEEDED, 1000, pair.name)
    q = await pair.adapter.query(ref(req))
    assert (q.status, q.wallet) == (TradeStatus.SUCCEEDED, pair.name)


async def test_tap_without_a_wallet_is_recorded_as_the_channels(pair):
    res = await pair.adapter.pay(tap(pair, 1100, None))
    assert (res.status, res.wallet) == (TradeStatus.SUCCEEDED, pair.name)


async def test_in_app_tn_then_customer_pays_and_the_notification_names_the_wallet(pair):
    req = pair.pay_request(amount=2000, method=Method.APP)
    res = await pair.adapter.pay(req)
    se = SE_TYPES[pair.name]
    assert res.status is TradeStatus.PENDING and res.pay_params is not None
    assert res.pay_params == {"tn": res.pay_params["tn"], **({"seType": se} if se else {})}
    await pair.customer_pays(prepay_id=res.pay_params["tn"])
    note = await note_for(pair, req.out_trade_no)
    assert note.amount == 2000 and note.payment is not None
    assert (note.payment.status, note.payment.wallet) == (TradeStatus.SUCCEEDED, pair.name)


async def test_in_app_with_another_wallets_se_type_is_refused(pair):
    other = ApplePayAdapter if SE_TYPES[pair.name] else type(
        "Huawei", (UnionPayAdapter,), {"se_type": "04"})
    wrong = other(pair.adapter.settings, pair.adapter.http)
    with pytest.raises(ChannelError) as e:
        await wrong.pay(pair.pay_request(amount=2000, method=Method.APP))
    # the wallet's own refusal of the request: the caller's error, never a breaker failure
    assert not e.value.retriable and e.value.kind == "refused" and e.value.caller


async def test_wallet_channels_take_no_barcode_or_qr(pair):
    for method in (Method.BARCODE, Method.QR):
        with pytest.raises(ChannelError) as e:
            await pair.adapter.pay(pair.pay_request(amount=100, method=method, auth_code="6212345678901234567"))
        assert e.value.kind == "invalid_request"
    # sent anyway (a plain UnionPay adapter on the wallet's keys), the wallet's gateway refuses it
    plain = UnionPayAdapter(pair.adapter.settings, pair.adapter.http)
    res = await plain.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code="6212345678901234567"))
    assert (res.status, res.failure_code) == (TradeStatus.FAILED, "32")


async def test_tap_userpaying_forever_then_reverse(pair):
    req = tap(pair, 1012, pair.name)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PROCESSING
    assert (await pair.adapter.reverse(ref(req))).status is TradeStatus.REVERSED


async def test_wallet_refund_and_statement(pair):
    req = tap(pair, 5000, pair.name)
    res = await pair.adapter.pay(req)
    rr = RefundRequest(f"rfd_{req.out_trade_no[4:]}", req.out_trade_no, res.channel_trade_no, 5000, 1200, None,
                       pair.notify_url("refund"), payment_created_at=req.created_at)
    assert (await pair.adapter.refund(rr)).status is RefundStatus.PROCESSING
    note = await note_for(pair, req.out_trade_no, "refund")
    assert note.refund is not None and note.refund.status is RefundStatus.SUCCEEDED and note.amount == 1200
    lines = await pair.adapter.statement(business_today())
    assert {(x.kind, x.amount) for x in lines} == {("payment", 5000), ("refund", 1200)}


async def test_token_and_cryptogram_never_reach_repr_or_logs(pair, caplog):
    caplog.set_level(logging.DEBUG)
    req = tap(pair, 1300, pair.name)
    await pair.adapter.pay(req)
    await pair.adapter.query(ref(req))
    shown = [repr(req), str(req), *(r.getMessage() for r in caplog.records)]
    assert len(shown) > 2
    assert not [s for s in shown if TOKEN in s or CRYPTOGRAM in s]
