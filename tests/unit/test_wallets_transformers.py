"""Apple Pay, Huawei Pay and Samsung Pay: UnionPay's core with the wallet's marks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.applepay import transformers as apple
from channels.base import Method, NfcData, PayRequest, TradeStatus
from channels.huaweipay import transformers as huawei
from channels.registry import ADAPTERS
from simulators.registry import SIMULATORS
from channels.samsungpay import transformers as samsung
from channels.unionpay import transformers as t
from channels.unionpay.adapter import UnionPayAdapter
from simulators.unionpay import UnionPaySimulator

WALLETS: dict[str, ModuleType] = {"applepay": apple, "huaweipay": huawei, "samsungpay": samsung}
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MER = t.Merchant(mer_id="777290058110048", cert_id="68759663125", encrypt_cert_id="69042905377")
AT = datetime(2024, 1, 1, 16, 30, tzinfo=timezone.utc)


def pay_req(method: Method, **kw) -> PayRequest:
    return PayRequest(out_trade_no="pay_0123456789abcdefghijklmn", amount=1234, method=method, subject="s",
                      notify_url="https://pay.example.com/notify/w", expire_at=AT + timedelta(minutes=5),
                      created_at=AT, **kw)


def test_se_types_are_huawei_04_samsung_02_and_none_for_apple():
    assert (huawei.SE_TYPE, samsung.SE_TYPE, apple.SE_TYPE) == ("04", "02", None)
    assert {name: m.WALLET for name, m in WALLETS.items()} == {n: n for n in WALLETS}


@pytest.mark.parametrize("name", list(WALLETS))
def test_wallet_channels_are_unionpay_under_the_wallets_name(name):
    cls = ADAPTERS[name]
    assert issubclass(cls, UnionPayAdapter) and cls is not UnionPayAdapter
    assert (cls.name, cls.wallet, cls.se_type) == (name, WALLETS[name].WALLET, WALLETS[name].SE_TYPE)
    assert cls.methods == frozenset({Method.NFC, Method.APP})
    assert cls.flows == UnionPayAdapter.flows and cls.default_recovery == UnionPayAdapter.default_recovery
    sim = SIMULATORS[name].__module__
    assert sim == f"simulators.{name}"
    assert UnionPayAdapter.wallet is None and UnionPayAdapter.name == "unionpay"     # the base is untouched
    assert UnionPaySimulator.methods == frozenset({"barcode", "qr", "nfc", "app"})


def test_unionpay_recovery_queries_at_5_then_10_and_reverses_after_60():
    r = UnionPayAdapter.default_recovery
    assert (r.first_delay, r.interval, r.give_up_after, r.final_action) == (5.0, 10.0, 60.0, "reverse")


@pytest.mark.parametrize("name", list(WALLETS))
def test_in_app_request_carries_the_wallets_marks(name):
    w = WALLETS[name]
    path, f = t.pay_request(pay_req(Method.APP), MER, wallet=w.WALLET, se_type=w.SE_TYPE)
    assert path == t.APP_TRANS_PATH and f["reqReserved"] == "{wallet=" + name + "}"
    if w.SE_TYPE:
        assert t.parse_composite(f["reserved"]) == {"seType": w.SE_TYPE}
    else:
        assert "reserved" not in f


@pytest.mark.parametrize("name", list(WALLETS))
def test_pay_params_hand_the_tn_and_the_se_type_to_the_client(name):
    w = WALLETS[name]
    res = t.pay_result({"respCode": "00", "tn": "201712011234567890123"}, Method.APP, wallet=w.WALLET,
                       se_type=w.SE_TYPE)
    expected = {"tn": "201712011234567890123"} | ({"seType": w.SE_TYPE} if w.SE_TYPE else {})
    assert (res.status, res.pay_params, res.wallet) == (TradeStatus.PENDING, expected, name)


@pytest.mark.parametrize("name", list(WALLETS))
def test_a_tap_without_a_wallet_is_marked_with_the_channels(name):
    nfc = NfcData(token="6225880000000001", expiry="2812", cryptogram="00112233445566FF")
    _, f = t.pay_request(pay_req(Method.NFC, nfc=nfc), MER, wallet=name, encrypt_key=KEY.public_key())
    assert t.reserved_value(f, "wallet") == name
    # the tap's own wallet wins
    nfc.wallet = "applepay"
    _, f = t.pay_request(pay_req(Method.NFC, nfc=nfc), MER, wallet=name, encrypt_key=KEY.public_key())
    assert t.reserved_value(f, "wallet") == "applepay"


@pytest.mark.parametrize("name", list(WALLETS))
def test_notification_without_a_marked_wallet_reports_the_channels(name):
    note = t.notification({"txnType": "01", "orderId": "pay0123456789abcdefghijklmn", "txnAmt": "1234",
                           "respCode": "00", "queryId": "Q1"}, wallet=name)
    assert note.payment is not None and note.payment.wallet == name
