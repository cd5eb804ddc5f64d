"""WeChat Pay v3 transformers and signers against fixed vectors.

TEST_KEY_PEM below is a throw-away RSA key generated once for these tests: a
test vector, never used anywhere else.
"""
from __future__ import annotations

import base64
import hashlib
import time
from datetime import date, datetime, timezone
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, strategies as st

from channels.base import (
    ChannelError, ChannelSettings, Method, NotificationRejected, PayRequest, RefundRequest, RefundStatus,
    TradeStatus,
)
from channels.wechatpay import transformers as T
from channels.wechatpay.adapter import WechatPayAdapter
from channels.wxv3 import crypto
from channels.wxv3.adapter import V3Adapter
from channels.secrets import Secret

TEST_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCJNfbmWXI6B+QV
FWn3zDCaiymT+y9JbwhtwwdPxOSqI0JtCYBOOq6bpm97dqeW/FUeRu/4iZ6/mnmW
9KsWXuWtlZx7KjqmmuWmXsvOTE9+tggqms0t8+sXCLftVGNuoSxwGILwubfsBGQ6
UXyv8F6ezq6IgOm3OxW4RHuWrM7NoaYwJjEqpSHDzdFzAmM+l9lO+LHzNg617d9k
y8pMat3LYr+IFVlZL0lRC8k9t8NPTZa14PjM0IIPf1LD1RdBMbmeDLk1lxbcvvDl
gpdwWG/R4EnoDFwONuqHj+E9BfuC7c7bMNZltNbwtM0GvTUAjYCmX95yTyLJ0tBy
CBMrvxEPAgMBAAECggEAHoQNetKW2HgrzlKaZD2Z660anKpHLIZQshSneiK4lmxM
GDL+QafEcKKV9bgActCA38B4G2cEEun4s82LhWiqnS4ChNPyAl69x4AaxLFtFqnG
bC9MhbVTaiaKvXJAwPiAiReye3ZahNe/MMcxu3FyodAmuf4tvI4b+QTmFa8uOUYw
bpp2+bOCIr2h+q2R32/2o173vjt/T0sWDiYkDVZVCvQq1FyzPFFatv/jNkF07G4g
5zWOOqeWCaILWptRNjKRtgFz+rLabSwrMU6LEqa35d4GFXnBk4fxhdHtdDRRjWcM
idNy07g2MBtva4sU/ya0Z5a+XXLcMoFT0isbLORmmQKBgQC+ohlOrJUKQSPrEdC6
TicFjlCPxkiv64B2LRUvUWCbPs/tYO3LL8W657NsttAkC2NH1N9aHFyJ8u/PxLtz
nLJ8N+wtVRimPnJfq1pxhdDxvQAh+6dV+9nIT8PmmqUbOr7Y35OE1dg/SAgf5NiN
RRx6uj3SGDr6h9L/RSHoiTAmeQKBgQC4Qmn613QlfJu2nlLavbO3nk8eWhRO7PNh
hUVwVhepxlz97hSnsLi944i+6pouN+jYL6hKuOMHrY5zB0XnKoDW+YubN1c1itY5
rmXuPFhBB08bWQmuxCb3WVynxm6Uf9mRLZeiUSZV148HPBJmMqbWX0uzkFr/eirp
qMb8IpQxxwKBgQCCfDwsYO9HbJ0kWzZvP+1v3SEBuKyqVd3BhkxY7i/dM9ppVo6O
JO4IaG6lPGEuOulDEs+rQ3yIJFTH95aDpT96zWCJCxVrPZVWLNkkmX8S6Na9bB73
OQOyG/8wyqu2/rgBhM/Z/fIeJrUA98jOsf6zduW3+EPulqfzeSOjorvlqQKBgQCU
o97in9PuOatTkjy8gLPtuCOTFI+1a6iaTuxJRuon5wE1R04aSJF/fYHeoVpnVmrb
mvZj8OoUU4nKeV+Gr97njL92IxqS8sEGHw3TNZLsQn0qTpVlCo90kf4Qyh6CZPCa
EPF124jVTuLuryMYllvIK2/iFt2Ronfjrmd3Fl3+GQKBgCTnN2NGVBpt3SVR2R3h
QNaQDP/EkpUbfStAHX60jdY4rDAIIj3iCkbxXQqhAavsswT/EAs1IOPFryhbCuUA
YYv1prPuzk41Q0J4DqejBMiQWbTOwiNe+4jBm+hAbdrskIHQafwQJ4Wa2Outkwbu
gYQm72STgCLS4ag8xFfzPrgs
-----END PRIVATE KEY-----
"""
KEY = serialization.load_pem_private_key(TEST_KEY_PEM, password=None)
assert isinstance(KEY, rsa.RSAPrivateKey)
PUB = KEY.public_key()
APIV3_KEY = b"0123456789abcdef0123456789ABCDEF"   # 32 bytes, test vector
MCHID, APPID = "1900000109", "wxd678efh567hg6787"
SERIAL, PROVIDER_SERIAL = "5157F09EFDC096DE15EBE81A47057A72", "PLATFORM01"
IDS = T.V3Ids(MCHID, APPID)
PARTNER = T.V3Ids(MCHID, APPID, sub_mchid="1900000111")

BODY = (b'{"appid":"wxd678efh567hg6787","mchid":"1900000109","description":"test",'
        b'"out_trade_no":"pay_0123456789abcdefghijklmn","amount":{"total":100,"currency":"CNY"}}')
MESSAGE = (b"POST\n/v3/pay/transactions/native\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n" + BODY + b"\n")
#: SHA256withRSA(PKCS#1 v1.5) of MESSAGE under TEST_KEY_PEM, computed once with `cryptography`
SIGNATURE = "dQZkPFL7C9p4tzPOjObxMVw4UHtn3pRIljCxc9AafdP6LmZ9WVOHwSmrZmN+UI2fjVJKVmxNMbHLYyoduQ691QqG7VjZsJOUkFRN2W3EW6UMscz2phZAQJw2/RQ9fiPGqcH0jdfFgs4IwL8dqbBC+X0bfYEmY2kqQJQ6ImY6MkSW6GrQ4l4kTALv/p1m3JafYGgsqwZLxvbgplf5oLPuu81OMxmtYGMd8BmNymVuDAFcaqxie57guAyzgRYa0VHO5GM+wY7ZYvt58rDtRmuT3ZCGrBdQa1jKr3jZh3IqLLNWyL7OxiQVEQY66ku9T2vx9qYLP7BT18frzqmbv40XHA=="


def independent_sign(message: bytes, key: rsa.RSAPrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def offline_adapter(cls: type[V3Adapter], tmp_path: Path, key_pem: bytes, apiv3_key: bytes, **ids: str) -> V3Adapter:
    """An adapter whose own key and the provider's are both ``key_pem``, without HTTP: for the
    signing and notification checks (also used by the Douyin tests)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    (tmp_path / "key.pem").write_bytes(key_pem)
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    settings = ChannelSettings(name=cls.name, base_url="http://127.0.0.1:1", private_key_file=str(tmp_path / "key.pem"),
                               provider_public_key_file=str(tmp_path / "pub.pem"), secret=Secret(apiv3_key.decode()),
                               **ids)
    return cls(settings, None)  # type: ignore[arg-type]


@pytest.fixture
def adapter(tmp_path) -> V3Adapter:
    return offline_adapter(WechatPayAdapter, tmp_path, TEST_KEY_PEM, APIV3_KEY, mch_id=MCHID, app_id=APPID,
                           serial_no=SERIAL, provider_serial_no=PROVIDER_SERIAL)


def pay_request(method: Method, **kw) -> PayRequest:
    return PayRequest(out_trade_no="pay_0123456789abcdefghijklmn", amount=kw.pop("amount", 100), method=method,
                      subject="test", notify_url="https://pay.example.com/notify/wechatpay",
                      expire_at=datetime(2024, 5, 1, 4, 0, 0, tzinfo=timezone.utc), **kw)


# -- signing --------------------------------------------------------------------

def test_request_message_is_the_five_line_string():
    assert crypto.request_message("post", "/v3/pay/transactions/native", "1554208460",
                                  "593BEC0C930BF1AFEB40B4A08C8FB242", BODY) == MESSAGE
    assert crypto.request_message("GET", "/v3/certificates", "1", "n", b"") == b"GET\n/v3/certificates\n1\nn\n\n"


def test_signature_matches_the_fixed_vector():
    assert crypto.rsa_sign(KEY, MESSAGE) == SIGNATURE == independent_sign(MESSAGE)


def test_verify_accepts_the_providers_signature_and_rejects_tampering():
    msg = crypto.response_message("1554209980", "c5ac7061fccab6bf3e254dcf98995b8c", b'{"code_url":"weixin://x"}')
    assert msg == b'1554209980\nc5ac7061fccab6bf3e254dcf98995b8c\n{"code_url":"weixin://x"}\n'
    sig = independent_sign(msg)
    assert crypto.rsa_verify(PUB, msg, sig)
    assert not crypto.rsa_verify(PUB, msg.replace(b"x", b"y"), sig)
    assert not crypto.rsa_verify(PUB, msg, "not base64!")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not crypto.rsa_verify(PUB, msg, independent_sign(msg, other))


def test_authorization_header_has_wechats_scheme_and_field_order(adapter):
    header = adapter.authorization("POST", "/v3/pay/transactions/native", BODY, "1554208460",
                                   "593BEC0C930BF1AFEB40B4A08C8FB242")
    assert header == ('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
                      f'signature="{SIGNATURE}",timestamp="1554208460",serial_no="{SERIAL}"')
    scheme, values = crypto.parse_authorization(header)
    assert scheme == "WECHATPAY2-SHA256-RSA2048" and values["signature"] == SIGNATURE


def test_parse_authorization_refuses_garbage():
    with pytest.raises(ValueError):
        crypto.parse_authorization("WECHATPAY2-SHA256-RSA2048")
    with pytest.raises(ValueError):
        crypto.parse_authorization("X a=1,broken")


def test_freshness_window_is_both_ways():
    assert crypto.is_fresh("1000", 1300, 300) and crypto.is_fresh("1300", 1000, 300)
    assert not crypto.is_fresh("1000", 1301, 300) and not crypto.is_fresh("soon", 1000, 300)


def test_aes_gcm_resource_decrypts_and_detects_tampering():
    ct = base64.b64encode(AESGCM(APIV3_KEY).encrypt(b"0123456789ab", b'{"a":1}', b"transaction")).decode()
    aead = crypto.aes_key(APIV3_KEY)
    assert crypto.aes_gcm_decrypt(aead, "0123456789ab", "transaction", ct) == b'{"a":1}'
    with pytest.raises(crypto.InvalidTag):
        crypto.aes_gcm_decrypt(aead, "0123456789ab", "refund", ct)
    with pytest.raises(crypto.InvalidTag):
        crypto.aes_gcm_decrypt(crypto.aes_key(b"x" * 32), "0123456789ab", "transaction", ct)
    with pytest.raises(crypto.InvalidTag):
        crypto.aes_gcm_decrypt(aead, "0123456789ab", "transaction", "%%%")
    with pytest.raises(ValueError):
        crypto.aes_key(b"short")


def test_jsapi_and_app_client_parameters_are_signed_over_their_four_lines():
    params = T.client_pay_params(T.PROFILE, Method.JSAPI, IDS, "wx201410272009395522657a690389285100", "1414561699",
                                 "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", lambda m: crypto.rsa_sign(KEY, m))
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100" and params["signType"] == "RSA"
    line = (b"wxd678efh567hg6787\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n"
            b"prepay_id=wx201410272009395522657a690389285100\n")
    assert params["paySign"] == independent_sign(line)
    app = T.client_pay_params(T.PROFILE, Method.APP, PARTNER, "wx1", "1414561699", "n",
                              lambda m: crypto.rsa_sign(KEY, m))
    assert app["package"] == "Sign=WXPay" and app["partnerid"] == "1900000111"
    assert app["sign"] == independent_sign(b"wxd678efh567hg6787\n1414561699\nn\nwx1\n")


# -- money, ids, time -----------------------------------------------------------

@pytest.mark.parametrize("fen, yuan", [(0, "0.00"), (1, "0.01"), (10, "0.10"), (100, "1.00"), (12345, "123.45"),
                                       (-5, "-0.05"), (10_000_000_00, "10000000.00")])
def test_fen_yuan_conversion(fen, yuan):
    assert T.fen_to_yuan(fen) == yuan and T.yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("text, fen", [("1", 100), ("1.5", 150), (" 7.00 ", 700), ("0.5", 50), ("-0.01", -1)])
def test_yuan_strings_without_two_decimals(text, fen):
    assert T.yuan_to_fen(text) == fen


@pytest.mark.parametrize("bad", ["1.234", "abc", "", "1e3", "1.2.3", "¥1", ".5", "0.1.0"])
def test_malformed_yuan_is_refused_never_rounded(bad):
    with pytest.raises(ValueError):
        T.yuan_to_fen(bad)


def test_fen_must_be_int():
    with pytest.raises(TypeError):
        T.fen_to_yuan(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        T.fen_to_yuan(True)


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_fen_yuan_round_trip(fen):
    assert T.yuan_to_fen(T.fen_to_yuan(fen)) == fen


def test_paycore_ids_travel_unchanged():
    for no in ("pay_0123456789abcdefghijklmn", "rfd_zyxwvutsrqponmlkjihgfedc"):
        assert T.wire_out_no(no) == no
    for bad in ("pay_" + "a" * 30, "a b c d e", "short", "pay_中文订单号码"):
        with pytest.raises(ValueError):
            T.wire_out_no(bad)


def test_times_are_rfc3339_in_china_time():
    assert T.rfc3339(datetime(2024, 5, 1, 4, 0, 0, tzinfo=timezone.utc)) == "2024-05-01T12:00:00+08:00"
    assert T.parse_time("2024-05-01T12:00:00+08:00") == datetime(2024, 5, 1, 4, tzinfo=timezone.utc)
    assert T.parse_time("yesterday") is None and T.parse_time(None) is None


# -- status mapping -------------------------------------------------------------

@pytest.mark.parametrize("state, status", [
    ("SUCCESS", TradeStatus.SUCCEEDED), ("REFUND", TradeStatus.SUCCEEDED), ("NOTPAY", TradeStatus.PENDING),
    ("CLOSED", TradeStatus.CLOSED), ("REVOKED", TradeStatus.REVERSED), ("USERPAYING", TradeStatus.PROCESSING),
    ("PAYERROR", TradeStatus.FAILED), ("ACCEPTED", TradeStatus.PROCESSING)])
def test_trade_state_mapping(state, status):
    assert T.trade_status(state) is status


def test_unknown_trade_state_is_garbage():
    with pytest.raises(ChannelError) as e:
        T.trade_status("HALFPAID")
    assert e.value.retriable and e.value.kind == "garbage"


@pytest.mark.parametrize("state, status", [("SUCCESS", RefundStatus.SUCCEEDED), ("PROCESSING", RefundStatus.PROCESSING),
                                           ("CLOSED", RefundStatus.FAILED), ("ABNORMAL", RefundStatus.FAILED)])
def test_refund_status_mapping(state, status):
    assert T.refund_status(state) is status


# -- requests -------------------------------------------------------------------

def test_native_order_body():
    assert T.order_path(T.PROFILE, Method.QR, IDS) == "/v3/pay/transactions/native"
    assert T.order_body(pay_request(Method.QR), IDS) == {
        "appid": APPID, "mchid": MCHID, "description": "test", "out_trade_no": "pay_0123456789abcdefghijklmn",
        "amount": {"total": 100, "currency": "CNY"}, "time_expire": "2024-05-01T12:00:00+08:00",
        "notify_url": "https://pay.example.com/notify/wechatpay", "scene_info": {"payer_client_ip": "127.0.0.1"}}


def test_jsapi_h5_and_partner_bodies():
    assert T.order_body(pay_request(Method.JSAPI, payer={"openid": "oUpF8"}), IDS)["payer"] == {"openid": "oUpF8"}
    assert T.order_body(pay_request(Method.H5), IDS)["scene_info"]["h5_info"] == {"type": "Wap"}
    body = T.order_body(pay_request(Method.JSAPI, payer={"openid": "oUpF8"}), PARTNER)
    assert (body["sp_appid"], body["sp_mchid"], body["sub_mchid"]) == (APPID, MCHID, "1900000111")
    assert "appid" not in body and body["payer"] == {"sp_openid": "oUpF8"}
    assert T.order_path(T.PROFILE, Method.APP, PARTNER) == "/v3/pay/partner/transactions/app"


def test_codepay_body_carries_the_auth_code_and_store():
    body = T.codepay_body(pay_request(Method.BARCODE, auth_code="134567890123456789"), IDS, "paycore")
    assert body["payer"] == {"auth_code": "134567890123456789"}
    assert body["scene_info"] == {"store_info": {"out_id": "paycore"}, "device_ip": "127.0.0.1"}
    assert "notify_url" not in body and body["amount"] == {"total": 100, "currency": "CNY"}
    with pytest.raises(ValueError):
        T.codepay_body(pay_request(Method.BARCODE), IDS, "paycore")


def test_query_close_reverse_refund_and_bill_paths():
    no = "pay_0123456789abcdefghijklmn"
    assert T.query_path(T.PROFILE, no, IDS) == f"/v3/pay/transactions/out-trade-no/{no}?mchid={MCHID}"
    assert T.query_path(T.PROFILE, no, PARTNER) == (
        f"/v3/pay/partner/transactions/out-trade-no/{no}?sp_mchid={MCHID}&sub_mchid=1900000111")
    assert T.close_path(T.PROFILE, no, IDS) == f"/v3/pay/transactions/out-trade-no/{no}/close"
    assert T.close_body(IDS) == {"mchid": MCHID}
    assert T.close_body(PARTNER) == {"sp_mchid": MCHID, "sub_mchid": "1900000111"}
    assert T.reverse_path(no, IDS) == f"/v3/pay/transactions/out-trade-no/{no}/reverse"
    assert T.reverse_body(IDS) == {"appid": APPID, "mchid": MCHID}
    assert T.refund_query_path(T.PROFILE, "rfd_zyxwvutsrqponmlkjihgfedc", PARTNER) == (
        "/v3/refund/domestic/refunds/rfd_zyxwvutsrqponmlkjihgfedc?sub_mchid=1900000111")
    assert T.bill_path(T.PROFILE, date(2024, 5, 1), IDS) == "/v3/bill/tradebill?bill_date=2024-05-01&bill_type=ALL"


def test_refund_body_names_the_payment_and_amounts():
    req = RefundRequest("rfd_zyxwvutsrqponmlkjihgfedc", "pay_0123456789abcdefghijklmn", None, 1000, 300, "return",
                        "https://pay.example.com/notify/wechatpay/refund")
    assert T.refund_body(req, IDS) == {
        "out_trade_no": "pay_0123456789abcdefghijklmn", "out_refund_no": "rfd_zyxwvutsrqponmlkjihgfedc",
        "reason": "return", "notify_url": "https://pay.example.com/notify/wechatpay/refund",
        "amount": {"refund": 300, "total": 1000, "currency": "CNY"}}
    req.channel_trade_no = "4200000001"
    body = T.refund_body(req, PARTNER)
    assert body["transaction_id"] == "4200000001" and body["sub_mchid"] == "1900000111" and "out_trade_no" not in body


# -- answers --------------------------------------------------------------------

TX = {"appid": APPID, "mchid": MCHID, "out_trade_no": "pay_0123456789abcdefghijklmn", "transaction_id": "4200000001",
      "trade_type": "MICROPAY", "trade_state": "SUCCESS", "success_time": "2024-05-01T12:00:05+08:00",
      "amount": {"total": 100, "payer_total": 100, "currency": "CNY"}}


def test_codepay_success():
    r = T.codepay_result(200, TX)
    assert (r.status, r.channel_trade_no, r.amount) == (TradeStatus.SUCCEEDED, "4200000001", 100)
    assert r.paid_at == datetime(2024, 5, 1, 4, 0, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("status, body", [
    (202, {"code": "USERPAYING", "message": "需要用户输入支付密码"}),
    (403, {"code": "USERPAYING", "message": "需要用户输入支付密码"}),
    (200, {**TX, "trade_state": "USERPAYING"}),
])
def test_codepay_userpaying_as_error_code_or_trade_state(status, body):
    assert T.codepay_result(status, body).status is TradeStatus.PROCESSING


def test_codepay_decline_is_data_and_systemerror_is_a_fault():
    r = T.codepay_result(403, {"code": "NOTENOUGH", "message": "用户余额不足"})
    assert (r.status, r.failure_code) == (TradeStatus.FAILED, "NOTENOUGH")
    for code in ("SYSTEMERROR", "BANKERROR"):
        with pytest.raises(ChannelError) as e:
            T.codepay_result(500, {"code": code})
        assert e.value.retriable and e.value.kind == "system_error"
    assert T.codepay_result(400, {"code": "ORDERPAID"}).status is TradeStatus.PROCESSING
    with pytest.raises(ChannelError):
        T.codepay_result(200, {"appid": APPID})


def test_prepay_answers():
    assert T.prepay_result(Method.QR, 200, {"code_url": "weixin://wxpay/bizpayurl?pr=x"}, dict).qr_code == (
        "weixin://wxpay/bizpayurl?pr=x")
    assert T.prepay_result(Method.H5, 200, {"h5_url": "https://h5"}, dict).pay_params == {"h5_url": "https://h5"}
    r = T.prepay_result(Method.APP, 200, {"prepay_id": "wx1"}, lambda p: {"prepayid": p})
    assert (r.status, r.pay_params) == (TradeStatus.PENDING, {"prepayid": "wx1"})
    r = T.prepay_result(Method.JSAPI, 400, {"code": "PARAM_ERROR", "message": "openid"}, dict)
    assert (r.status, r.failure_code) == (TradeStatus.FAILED, "PARAM_ERROR")
    with pytest.raises(ChannelError):
        T.prepay_result(Method.QR, 200, {}, dict)


def test_query_close_and_reverse_answers():
    assert T.query_result(200, {**TX, "trade_state": "NOTPAY"}).status is TradeStatus.PENDING
    assert T.query_result(404, {"code": "ORDER_NOT_EXIST"}).status is TradeStatus.NOT_FOUND
    with pytest.raises(ChannelError) as e:
        T.query_result(400, {"code": "PARAM_ERROR"})
    assert e.value.retriable
    assert T.close_result(204, {}).status is TradeStatus.CLOSED
    assert T.close_result(400, {"code": "ORDERPAID"}) is None
    assert T.reverse_result(200, {"transaction_id": "42"}).status is TradeStatus.REVERSED
    again = T.reverse_result(403, {"code": "USERPAYING"})
    assert again.retry and again.status is TradeStatus.PROCESSING
    assert T.reverse_result(404, {"code": "ORDER_NOT_EXIST"}).status is TradeStatus.NOT_FOUND


def test_refund_answers():
    r = T.refund_result(200, {"refund_id": "50300001", "status": "PROCESSING"})
    assert (r.status, r.channel_refund_no) == (RefundStatus.PROCESSING, "50300001")
    r = T.refund_result(403, {"code": "NOT_ENOUGH", "message": "基本账户余额不足"})
    assert (r.status, r.failure_code) == (RefundStatus.FAILED, "NOT_ENOUGH")
    assert T.refund_result(200, {"refund_id": "1", "status": "ABNORMAL"}).failure_code == "ABNORMAL"


# -- notifications --------------------------------------------------------------

def notification(plain: dict, *, event="TRANSACTION.SUCCESS", ad="transaction", key: bytes = APIV3_KEY,
                 ts: int | None = None, signer: rsa.RSAPrivateKey = KEY, serial=PROVIDER_SERIAL):
    nonce = "fdasflkja484"
    ct = base64.b64encode(AESGCM(key).encrypt(nonce.encode(), orjson.dumps(plain), ad.encode())).decode()
    body = orjson.dumps({"id": "EV-2018022511223320873", "create_time": "2015-05-20T13:29:35+08:00",
                         "resource_type": "encrypt-resource", "event_type": event, "summary": "支付成功",
                         "resource": {"original_type": ad, "algorithm": "AEAD_AES_256_GCM", "ciphertext": ct,
                                      "associated_data": ad, "nonce": nonce}})
    stamp, hnonce = str(ts if ts is not None else int(time.time())), "c5ac7061fccab6bf3e254dcf98995b8c"
    headers = {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": hnonce, "Wechatpay-Serial": serial,
               "Wechatpay-Signature": independent_sign(crypto.response_message(stamp, hnonce, body), signer)}
    return headers, body


async def test_payment_notification_decrypts_to_the_transaction(adapter):
    headers, body = notification(TX)
    note = await adapter.parse_notification("payment", headers, body)
    assert (note.kind, note.out_trade_no, note.amount, note.merchant_ref) == (
        "payment", "pay_0123456789abcdefghijklmn", 100, MCHID)
    assert note.payment.status is TradeStatus.SUCCEEDED and note.notification_id == "EV-2018022511223320873"
    lower = {k.lower(): v for k, v in headers.items()}
    assert (await adapter.parse_notification("payment", lower, body)).out_trade_no == note.out_trade_no


async def test_refund_notification(adapter):
    plain = {"mchid": MCHID, "out_trade_no": "pay_0123456789abcdefghijklmn", "transaction_id": "4200000001",
             "out_refund_no": "rfd_zyxwvutsrqponmlkjihgfedc", "refund_id": "50300001", "refund_status": "SUCCESS",
             "amount": {"total": 100, "refund": 40, "payer_total": 100, "payer_refund": 40}}
    headers, body = notification(plain, event="REFUND.SUCCESS", ad="refund")
    note = await adapter.parse_notification("refund", headers, body)
    assert (note.out_refund_no, note.amount, note.refund.status) == (
        "rfd_zyxwvutsrqponmlkjihgfedc", 40, RefundStatus.SUCCEEDED)
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", headers, body)
    assert e.value.reason == "malformed"


@pytest.mark.parametrize("forge, reason", [
    (lambda h, b: (h, b.replace(b"EV-", b"EX-")), "bad_signature"),
    (lambda h, b: ({**h, "Wechatpay-Signature": h["Wechatpay-Signature"][::-1]}, b), "bad_signature"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "Wechatpay-Signature"}, b), "bad_signature"),
    (lambda h, b: ({**h, "Wechatpay-Serial": "SOMEONE-ELSE"}, b), "bad_signature"),
])
async def test_forged_notifications_are_rejected(adapter, forge, reason):
    headers, body = forge(*notification(TX))
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", headers, body)
    assert e.value.reason == reason


async def test_notification_signed_with_another_key_is_rejected(adapter):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", *notification(TX, signer=other))
    assert e.value.reason == "bad_signature"


async def test_stale_notification_is_rejected(adapter):
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", *notification(TX, ts=int(time.time()) - 301))
    assert e.value.reason == "stale"


async def test_resource_under_another_key_is_undecryptable(adapter):
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", *notification(TX, key=b"y" * 32))
    assert e.value.reason == "undecryptable"


async def test_signed_but_malformed_notification(adapter):
    body = b'{"id":"EV-1","resource":"nope"}'
    stamp, nonce = str(int(time.time())), "n"
    headers = {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": PROVIDER_SERIAL,
               "Wechatpay-Signature": independent_sign(crypto.response_message(stamp, nonce, body))}
    with pytest.raises(NotificationRejected) as e:
        await adapter.parse_notification("payment", headers, body)
    assert e.value.reason == "malformed"


def test_ack_is_wechats_format(adapter):
    ok, fail = adapter.ack(True), adapter.ack(False)
    assert (ok.status, orjson.loads(ok.body)) == (200, {"code": "SUCCESS"})
    assert fail.status == 400 and orjson.loads(fail.body)["code"] == "FAIL"


# -- the trade bill -------------------------------------------------------------

BILL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注\r\n"
    "`2024-05-01 12:00:05,`wxd678efh567hg6787,`1900000109,`0,`,`4200000001,`pay_0123456789abcdefghijklmn,`oUpF8,"
    "`MICROPAY,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`test,`,`0.07000,`0.60%,`12.34,`0.00,`\r\n"
    "`2024-05-01 13:00:00,`wxd678efh567hg6787,`1900000109,`0,`,`4200000001,`pay_0123456789abcdefghijklmn,`oUpF8,"
    "`MICROPAY,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300001,`rfd_zyxwvutsrqponmlkjihgfedc,`2.30,`0.00,`ORIGINAL,"
    "`SUCCESS,`test,`,`0.00000,`0.60%,`0.00,`2.30,`\r\n"
    "`2024-05-01 14:00:00,`wxd678efh567hg6787,`1900000109,`0,`,`4200000002,`pay_abcdefghijklmn0123456789,`oUpF8,"
    "`MICROPAY,`REVOKED,`OTHERS,`CNY,`1.00,`0.00,`0,`0,`0.00,`0.00,`,`,`test,`,`0.00000,`0.60%,`1.00,`0.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`2,`13.34,`2.30,`0.00,`0.07000,`13.34,`2.30\r\n")


def test_trade_bill_parses_payments_and_refunds():
    lines = T.parse_trade_bill(BILL)
    assert [(l.kind, l.out_trade_no, l.amount, l.status, l.out_refund_no) for l in lines] == [
        ("payment", "pay_0123456789abcdefghijklmn", 1234, "SUCCEEDED", None),
        ("refund", "pay_0123456789abcdefghijklmn", 230, "REFUNDED", "rfd_zyxwvutsrqponmlkjihgfedc"),
        ("payment", "pay_abcdefghijklmn0123456789", 100, "REVERSED", None)]
    assert lines[0].channel_trade_no == "4200000001"
    assert T.parse_trade_bill("") == []


def test_trade_bill_with_a_bad_amount_or_header_is_garbage():
    with pytest.raises(ChannelError) as e:
        T.parse_trade_bill(BILL.replace("`12.34,`0.00,`\r\n", "`12.345,`0.00,`\r\n", 1))
    assert e.value.kind == "garbage"
    with pytest.raises(ChannelError):
        T.parse_trade_bill("a,b,c\r\n`1,`2,`3\r\n")


def test_bill_application_answer_and_hash():
    raw = BILL.encode()
    sha1 = hashlib.sha1(raw).hexdigest()
    assert T.bill_result(200, {"download_url": "https://x/v3/billdownload/file?token=t", "hash_type": "SHA1",
                               "hash_value": sha1})[2] == sha1
    assert T.bill_result(400, {"code": "NO_STATEMENT_EXIST"}) is None
    with pytest.raises(ChannelError):
        T.bill_result(400, {"code": "STATEMENT_CREATING"})
    assert T.bill_hash_ok(raw, "SHA1", sha1.upper()) and not T.bill_hash_ok(raw + b" ", "SHA1", sha1)
    assert not T.bill_hash_ok(raw, "NOPE", sha1)


def test_recovery_rule_is_wechats_barcode_rule():
    rule = WechatPayAdapter.default_recovery
    assert (rule.first_delay, rule.interval, rule.give_up_after, rule.final_action) == (5.0, 10.0, 30.0, "reverse")
