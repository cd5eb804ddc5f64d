"""Douyin Pay v1 transformers and signers against fixed vectors: what differs from WeChat
(scheme, field order, headers, paths, client parameters) and the shared mappings as Douyin uses them.

TEST_KEY_PEM below is a throw-away RSA key generated once for these tests: a
test vector, never used anywhere else.
"""
from __future__ import annotations

import base64
import time
from datetime import date, datetime, timezone

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from channels.base import (
    ChannelError, Flow, Method, NotificationRejected, PayRequest, TradeRef, TradeStatus,
    UnsupportedFlow,
)
from channels.douyinpay import transformers as T
from channels.douyinpay.adapter import DouyinPayAdapter
from channels.wxv3 import crypto
from tests.unit.test_wechatpay_transformers import offline_adapter

TEST_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC/WEPQEyDeDD+U
h3PvWzRpjJl0ddPrEeb58LBq5GFU1d5IvrPG0TKQ0O3R7SQef1yLYKVhwc3nffdT
694AB3V76dd+W8gu1nf5ITcZPDoH18o0XHYrFQESHVB91Wu2avgT+X1QvKPu4/Y6
q3Krbv8ZBr9SB5usv3d4Nni8aW9rBDIDXLjk2bdJxuIijNZMJPGUqPCeYVLRVE32
Pwj4gpc/FL/EwMgJs0T95ssEgDjHXn7+CpFTTwvVZeBqWj/YOvGHvxORkdUDvKgA
XmZEphJW4ygng/PSWICHrJKDqFHNWP47jlLVPGskgBa1yL08aZfzBXXGUzIgmL0d
wivhgUUZAgMBAAECggEALT6JNmO3g1nBFPVccA4QXB7fUD7mP7DJfXMwu+3Jp/40
I95X8xyXSM/mVBuvTTjPYLOXF4D0l5bdCy58HWSmHolCJ8I7GPwkfTeh6CkqDZ20
VeJBHNnIGYjt9fsnj4hGpa56N8OLPdsQZ3oP0MKbtka2qYZcBKJ3dOjobqC9tD9u
gBD50f/6UnVu5MtfW6kB9kEHuASrttXsUpAjBVe1lEVbOGpcCv6+mW7FGySh1a7M
MDB1lx23erakrlDP0RL1+zK/yxUU1TAtOCXLZOCN55NyzX90WKlGnYPvwh1Z1yRD
sHxhvPmA7jeKWQj9n8sFj3FHEGvENmsQkWdQ7Vx6ewKBgQDjxxW02WEJ8roN/u2I
20NXXsjI3FPDeDVVGiATjXbTtcEYJrGvrupNqaE2acd1/jayctcG9tGwsYXQ8S31
u+Msu2GB1judNya8624yqCztxgQgR8oYpNudy2B2d4DDkShWgZ7XES3+yjFB+E/f
WTu0GWLEWRM8X0WbS8RIpes/bwKBgQDXDY9EbFBr0KgmnFyNLqnjG7dvLkr8NsHl
iCayY5/uhXyqWu/9KlPY1r9wR1VzvcVmjORlwIVGlRNW/yprqhhdVw3ejUotJ+pe
jN0tpQxBe1TtPqttu1EraOu0EhVVvt5hfO0s3HGkod07K5aCTg1U8hiJkb65EQDy
L4/o0mF/9wKBgQDPAfsXPkwzx1YSLDJio6si93CRI7Q4vMHzkue9/V4V8GQJ9/ia
iuREKrrqAd6VvLCnIzmLCbvu0pekGdzELLq8x5tJbZMGQb5CCdE/1pnmioTrdXMV
TJaPZOtJHzh2BDFd1TWvjdx4Z/e2Vd75RFa/Sib5/V4/CvLuvUApKimPnwKBgQCo
sYFN6i1XtbEBwKw1L4KinW5SL50wpX+KHzhDvTSKtXmqZHVXQWnOcf5wA/T7OsTr
gd/0FYY2bOBj4PuUwzQjnBNMHccvDt2hV5x0nsCzaRygkgWFqWetxrsGYR0NSxFE
peuiwjX/L93L+ZAyHSoGFXa8C3Dx2W3FjRu1Rbqn1wKBgDM4vh7MbmXpS9xGw0ff
UaSIx0AGRjonk3E0UoNHgxGpoRGhXVQ5aL1fTOEG2sUjVurSy4yLJo9kKw+QaWQR
qMpDJjIrhPwqKVwnZ48vkgpJJoSJ+x2i5FmupjKHXRj3ug7G+HONGVIAHiuEzbbY
qNhFvpxxuWxueHCHamlYgLhA
-----END PRIVATE KEY-----
"""
KEY = serialization.load_pem_private_key(TEST_KEY_PEM, password=None)
assert isinstance(KEY, rsa.RSAPrivateKey)
PUB = KEY.public_key()
APIV3_KEY = b"douyin-test-apiv3-key-32-bytes!!"   # 32 bytes, test vector
MCHID, APPID, SERIAL, PROVIDER_SERIAL = "7000000000001", "tt07e3715e98c9aac0", "6B3C1F0AA2", "DYPLATFORM9"
IDS = T.V3Ids(MCHID, APPID)
NO = "pay_0123456789abcdefghijklmn"

MESSAGE = b"GET\n/v1/trade/transactions/out-trade-no/" + NO.encode() + b"?mchid=7000000000001\n1710000000\nnonce32\n\n"
#: SHA256withRSA(PKCS#1 v1.5) of MESSAGE under TEST_KEY_PEM, computed once with `cryptography`
SIGNATURE = "FH1IwWNrdvO1PsD0bkIC+SvBOBV+XnlFnzXSSMFBSrpIjLm36UHWEIEGJ1TfyyokT/2xDM+/Y5fzV5kkVMqcBUnaJZeXHD4PNsuc+Ies1DVz2Rm8F8Irslz37y7oL+y+/alhD4cmMKqjpCzILZ/nRm2egnpMMNrmziHH8NnYrjvlBika5mC+VyEKc9+27RTCbIRJXUmsBIXXA7Hg8+r9geDjIyS2Yn4F9TCgB9Ss+ddAU3yzs2fPsvwtO2n+RiunrfHjnJyY9itKcbg0yUibPjnfSLeGu8KQnnPagb1FW8tmM9S2TSQhJEWNO8HJaCYsRH08ZjsgWsYc1sWdx2LGnw=="


def independent_sign(message: bytes, key: rsa.RSAPrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture
def adapter(tmp_path):
    return offline_adapter(DouyinPayAdapter, tmp_path, TEST_KEY_PEM, APIV3_KEY, mch_id=MCHID, app_id=APPID,
                           serial_no=SERIAL, provider_serial_no=PROVIDER_SERIAL)


def test_query_request_is_signed_over_the_five_lines():
    path = T.query_path(T.PROFILE, NO, IDS)
    assert path == f"/v1/trade/transactions/out-trade-no/{NO}?mchid={MCHID}"
    assert crypto.request_message("GET", path, "1710000000", "nonce32", b"") == MESSAGE
    assert crypto.rsa_sign(KEY, MESSAGE) == SIGNATURE == independent_sign(MESSAGE)


def test_authorization_header_is_douyins_scheme_and_order(adapter):
    header = adapter.authorization("GET", T.query_path(T.PROFILE, NO, IDS), b"", "1710000000", "nonce32")
    assert header == (f'DouyinPay-RSA mchid="{MCHID}",nonce_str="nonce32",timestamp="1710000000",'
                      f'serial_no="{SERIAL}",signature="{SIGNATURE}"')


def test_answer_signature_verifies_and_tampering_fails():
    msg = crypto.response_message("1710000001", "n2", b'{"prepay_id":"dy1"}')
    sig = independent_sign(msg)
    assert crypto.rsa_verify(PUB, msg, sig) and not crypto.rsa_verify(PUB, msg + b" ", sig)


def test_paths():
    assert T.order_path(T.PROFILE, Method.QR, IDS) == "/v1/trade/transactions/native"
    assert T.order_path(T.PROFILE, Method.H5, IDS) == "/v1/trade/transactions/h5"
    assert T.close_path(T.PROFILE, NO, IDS) == f"/v1/trade/transactions/out-trade-no/{NO}/close"
    assert T.PROFILE.refund_path == "/v1/trade/refund/domestic/refunds"
    assert T.refund_query_path(T.PROFILE, "rfd_zyxwvutsrqponmlkjihgfedc", IDS) == (
        "/v1/trade/refund/domestic/refunds/rfd_zyxwvutsrqponmlkjihgfedc")
    assert T.bill_path(T.PROFILE, date(2024, 5, 1), IDS) == "/v1/bill/billapply?bill_date=2024-05-01&bill_type=ALL"
    with pytest.raises(ValueError):
        T.order_path(T.PROFILE, Method.BARCODE, IDS)


def test_no_service_provider_mode():
    with pytest.raises(ChannelError) as e:
        T.query_path(T.PROFILE, NO, T.V3Ids(MCHID, APPID, sub_mchid="7000000000002"))
    assert not e.value.retriable and e.value.kind == "unsupported"


def test_order_body_in_int_fen():
    req = PayRequest(out_trade_no=NO, amount=1999, method=Method.JSAPI, subject="抖音商品",
                     notify_url="https://pay.example.com/notify/douyinpay", payer={"openid": "dy_open_1"},
                     expire_at=datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc))
    assert T.order_body(req, IDS) == {
        "appid": APPID, "mchid": MCHID, "description": "抖音商品", "out_trade_no": NO,
        "amount": {"total": 1999, "currency": "CNY"}, "time_expire": "2024-05-01T12:00:00+08:00",
        "notify_url": "https://pay.example.com/notify/douyinpay", "payer": {"openid": "dy_open_1"},
        "scene_info": {"payer_client_ip": "127.0.0.1"}}


def test_client_parameters_use_douyins_sign_type_and_package():
    sign = lambda m: crypto.rsa_sign(KEY, m)  # noqa: E731
    js = T.client_pay_params(T.PROFILE, Method.JSAPI, IDS, "dy123", "1710000000", "n", sign)
    assert js["signType"] == "DouyinPay-RSA" and js["package"] == "prepay_id=dy123"
    assert js["paySign"] == independent_sign(f"{APPID}\n1710000000\nn\nprepay_id=dy123\n".encode())
    app = T.client_pay_params(T.PROFILE, Method.APP, IDS, "dy123", "1710000000", "n", sign)
    assert app["package"] == "Sign=DYPay"
    assert app["sign"] == independent_sign(f"{APPID}\n1710000000\nn\ndy123\n".encode())


@pytest.mark.parametrize("state, status", [("SUCCESS", TradeStatus.SUCCEEDED), ("REFUND", TradeStatus.SUCCEEDED),
                                           ("NOTPAY", TradeStatus.PENDING), ("CLOSED", TradeStatus.CLOSED),
                                           ("PAYERROR", TradeStatus.FAILED)])
def test_trade_states(state, status):
    assert T.trade_status(state) is status


@pytest.mark.parametrize("fen, yuan", [(0, "0.00"), (5, "0.05"), (1999, "19.99"), (100000, "1000.00")])
def test_fen_yuan(fen, yuan):
    assert T.fen_to_yuan(fen) == yuan and T.yuan_to_fen(yuan) == fen


def signed(body: bytes, *, prefix: str = "Douyinpay", ts: int | None = None) -> dict[str, str]:
    stamp, nonce = str(ts if ts is not None else int(time.time())), "dynonce"
    return {f"{prefix}-Timestamp": stamp, f"{prefix}-Nonce": nonce, f"{prefix}-Serial": PROVIDER_SERIAL,
            f"{prefix}-Signature": independent_sign(crypto.response_message(stamp, nonce, body))}


def notification_body(key: bytes = APIV3_KEY) -> bytes:
    plain = {"mchid": MCHID, "appid": APPID, "out_trade_no": NO, "transaction_id": "7100001",
             "trade_state": "SUCCESS", "success_time": "2024-05-01T12:00:05+08:00",
             "amount": {"total": 1999, "currency": "CNY"}}
    ct = base64.b64encode(AESGCM(key).encrypt(b"dy0123456789", orjson.dumps(plain), b"transaction")).decode()
    return orjson.dumps({"id": "EV-DY-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
                         "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                                      "ciphertext": ct, "associated_data": "transaction", "nonce": "dy0123456789"}})


async def test_notification_with_douyin_headers_parses(adapter):
    body = notification_body()
    note = await adapter.parse_notification("payment", signed(body), body)
    assert (note.out_trade_no, note.amount, note.payment.status, note.merchant_ref) == (
        NO, 1999, TradeStatus.SUCCEEDED, MCHID)


@pytest.mark.parametrize("headers_of, body_of, reason", [
    (lambda b: signed(b, prefix="Wechatpay"), lambda b: b, "bad_signature"),       # WeChat's headers are not Douyin's
    (signed, lambda b: b.replace(b"EV-DY-1", b"EV-DY-2"), "bad_signature"),         # tampered after signing
    (lambda b: signed(b, ts=int(time.time()) - 600), lambda b: b, "stale"),
])
async def test_forged_or_stale_notifications_are_rejected(adapter, headers_of, body_of, reason):
    body = notification_body()
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", headers_of(body), body_of(body))
    assert e.value.reason == reason


async def test_notification_under_another_apiv3_key_is_undecryptable(adapter):
    body = notification_body(key=b"z" * 32)
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", signed(body), body)
    assert e.value.reason == "undecryptable"


def test_statement_file_is_parsed_like_wechats_trade_bill():
    text = (",".join(T.BILL_HEADER) + "\r\n"
            "`2024-05-01 12:00:05,`tt07e3715e98c9aac0,`7000000000001,`0,`,`7100001,`" + NO + ",`dy_open_1,`JSAPI,"
            "`SUCCESS,`OTHERS,`CNY,`19.99,`0.00,`0,`0,`0.00,`0.00,`,`,`抖音商品,`,`0.00000,`0.60%,`19.99,`0.00,`\r\n")
    [line] = T.parse_trade_bill(text)
    assert (line.kind, line.out_trade_no, line.amount, line.status) == ("payment", NO, 1999, "SUCCEEDED")


async def test_barcode_and_reverse_are_not_douyins(adapter):
    assert Method.BARCODE not in adapter.methods and Flow.REVERSE not in adapter.flows
    with pytest.raises(UnsupportedFlow):
        await adapter.pay(PayRequest(out_trade_no=NO, amount=1, method=Method.BARCODE, subject="x", notify_url="",
                                     expire_at=datetime.now(timezone.utc), auth_code="134567890123456789"))
    with pytest.raises(UnsupportedFlow):
        await adapter.reverse(TradeRef(NO, 1, Method.QR))


def test_recovery_closes_because_there_is_no_barcode():
    rule = DouyinPayAdapter.default_recovery
    assert rule.final_action == "close" and rule.first_delay == 5.0
