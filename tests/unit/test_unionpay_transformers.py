"""UnionPay ACP 5.1.0 transformers and signer against fixed vectors."""
from __future__ import annotations

import base64
import hashlib
import io
import zipfile
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given
from hypothesis import strategies as st

from channels.base import (
    ChannelError,
    ChannelSettings,
    Method,
    NfcData,
    NotificationRejected,
    PayRequest,
    RefundRequest,
    RefundStatus,
    TradeStatus,
)
from channels.unionpay import transformers as t
from channels.unionpay.adapter import UnionPayAdapter

# A test vector only: this key signs nothing outside this file.
TEST_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC0S+LoPIjGrLoe
9xLKe48CsOqIeaFwE63YDVO8qLDthvhTQwCv1XEi6wAxO/CXwAJ3jSiq09pCQyPs
dsdz65n4iuRUUL4xWN8oIqlLViYvyl5pNbf64fIKhkESdLKzsE6+l/+bQIJ8zNWC
be5a6jJpOUnTvR32Ez6stisMZOhzZIWshvbSpxOoFxk5IRRyYJqyplwO1exwSEQa
UsNLR5cymV2IqqnbSUI0C6zzWRyw3tbJsE6P2uQV+iiuXnCtTOvJOde4Jh4MKLk0
XPR5YWuEDKAQzZ4GSYdpwWv4SZsoXir3D8AVXxw3xALXj+6mvX0Xqa4aePuFr4M8
fY2AbosLAgMBAAECggEAOTDDKsCc8Ex1A4KDGuiDripZUu4mF+ueHuTnVXY7HTVN
ive7fYsahqV9m6B0SmaVQb/skPd/ibpLaGQrE2m+HvlLwTUVh4i1zMDl66hJl6o9
NWldUT8frFf2xzhuQRJhgBKt+VzGp3jAF03wqDUWxYrvELOyD879+AIW+Kj/lS5a
6mNy0CWijX880K9Jq/XBZFm0/JgOhHGjXdle788sbOO+FqvV0/9YlaehkMrc8IGl
/B5pB+WZTYAqnL1/hCaY2eI+8lgG2wDxAEkuSzZVL58i3jz4k40YKm0sC8m70zoc
yC/EJOHpua/UggIiiKbf4qblqCJRzApfHdpjMwU09QKBgQDaMbJNx7lrDrlK/HyG
URE2RHNl8d7RwI2ly5w9EpW3G3S5Jr5sP6Z1hJ+IQeCHt4QzJwf09J1jLDSMJ8EB
sBUFjI3W14wPJgUcipYzQGpQK+e5X3wWeDAqixFKye3eOM7CrQgxdVdp3dePmzuM
S12iKAAevL9QEo+TsjN9VCn5HQKBgQDTiS9XgdgOdogCfP9CaU7I2QaxWGNqQa9H
cO6bb+fQ7jOWBl2Nc3nogoVnYJDNPAR8r/7Z9Ogcw6cbZaqKB6py5k2NpK+YA7C0
joKE5rinswu6/XLd/YMtuTqy6VBL5TLD6Vqbs4eFFozhjQsTUaWo1ZU5mGEo/EaC
ShGy9Z4ERwKBgApEhGt8lpEfJEEPGJ0Je5HeLsABXcbpFMFUj4mgMkNnm1qLJDLb
2+1zzD4RO4unayUtFQbF7BIapm5iAIcfzh1wu8v8YK7lzx/EtcS7p0UWi9UBVUmJ
ZlraKHoofnUSn0gx9Ey/hNmKgvZTC75SXZmf4EGSCD6wYOlGXX3sU/1RAoGAdf1g
DbRcGf0dch3cl2N70WXUaNk/YoZOyU+Bl+u8Zvpmhbj5N6wAhKNA29+uBPwEGLRm
N5Z2XYz4SbzUefc6qKoy+d2xH953Es8mmBDFUKz6zwsNpisAn2FhD2g6JIssXMBt
jMl/vslMPYbZdaYl+91eRejr0NueTJAZ/TMpN4MCgYBufxcRXGLShMx1tmdMQYGl
Mnz0nE4c3AhPEeqQO6aDLCzrnABIF+iv1RRNSECbmaxbh2b4fcXYEa4V26A2CH5N
9/Ccpzj95gq/x0CBWUj7ZtPpxFzpJHkL6BCkpf0oDDDLw0Ch0rbETomlZOglA59R
k8xOm9RmPdruGigoUv1xvg==
-----END PRIVATE KEY-----
"""
KEY = load_pem_private_key(TEST_KEY_PEM, password=None)
assert isinstance(KEY, rsa.RSAPrivateKey)
PUB = KEY.public_key()
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

MER = t.Merchant(mer_id="777290058110048", cert_id="68759663125", encrypt_cert_id="69042905377")

FIELDS = {
    "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "certId": "68759663125", "txnType": "01",
    "txnSubType": "06", "bizType": "000000", "channelType": "08", "accessType": "0", "merId": "777290058110048",
    "orderId": "pay0123456789abcdefghijklmn", "txnTime": "20240102003000", "txnAmt": "1234",
    "currencyCode": "156", "backUrl": "https://pay.example.com/notify/unionpay", "qrNo": "6212345678901234567",
    "reqReserved": "", "signature": "ignored",
}
STRING_TO_SIGN = (
    "accessType=0&backUrl=https://pay.example.com/notify/unionpay&bizType=000000&certId=68759663125"
    "&channelType=08&currencyCode=156&encoding=UTF-8&merId=777290058110048&orderId=pay0123456789abcdefghijklmn"
    "&qrNo=6212345678901234567&signMethod=01&txnAmt=1234&txnSubType=06&txnTime=20240102003000&txnType=01"
    "&version=5.1.0")
DIGEST_HEX = "9d9f5fdaba556653f41954216274fcbe2057e92f0406414429f9e5e8399e1568"
SIGNATURE = (
    "Ovh9bLSJGCF9/og4wr71AcoqIfh46m+RAF1Ze52X8CVAfbGf+Df638gOXEWAI3Kj2CGbedspBAUptgM9a5b+Zrf78Lz9rKYcG0Ob2BxM"
    "DQqteYqilWTwjyQ9bggR/jgSKxLiWaymL2DvjdUA1R50bkwTbp9WIm7jd4NnBnr8gWrrY5OFm/3Q4XZT8dtSKQ7IMB/XSWORHbHWL0Fa"
    "wqBU/FRFhAPUeCwmwDV4GDYbhqNfl5Kv5qvU39X5DXLwHRfgKYGSzY/d8nAT6RKzCdG/XIct3p/Fig77hYdgyueKOs2Ea/7Zp3mDugG7"
    "dAs903TPEFo7qBq2BtTqR8mryoFTpw==")

PAID_AT = datetime(2024, 1, 1, 16, 30, tzinfo=timezone.utc)   # 2024-01-02 00:30 in Beijing


def pay_req(method: Method, **kw) -> PayRequest:
    return PayRequest(out_trade_no="pay_0123456789abcdefghijklmn", amount=kw.pop("amount", 1234), method=method,
                      subject="coffee", notify_url="https://pay.example.com/notify/unionpay",
                      expire_at=PAID_AT + timedelta(minutes=5), created_at=PAID_AT, **kw)


# -- signing -------------------------------------------------------------------
def test_string_to_sign_is_sorted_without_signature_and_empty_values():
    assert t.string_to_sign(FIELDS) == STRING_TO_SIGN


def test_first_hash_is_lowercase_hex_sha256_of_the_string():
    assert t.digest_hex(FIELDS) == DIGEST_HEX == hashlib.sha256(STRING_TO_SIGN.encode()).hexdigest()


def test_signature_is_rsa_sha256_over_the_hex_digest():
    independent = base64.b64encode(KEY.sign(DIGEST_HEX.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    assert t.sign(FIELDS, KEY) == independent == SIGNATURE


def test_a_single_hash_signature_does_not_verify():
    single = base64.b64encode(KEY.sign(STRING_TO_SIGN.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    assert not t.verify({**FIELDS, "signature": single}, PUB)


def test_fixed_vector_verifies_and_tampering_is_caught():
    good = {**FIELDS, "signature": SIGNATURE}
    assert t.verify(good, PUB)
    assert not t.verify({**good, "txnAmt": "1235"}, PUB)
    assert not t.verify({**good, "extra": "x"}, PUB)
    assert not t.verify(good, OTHER_KEY.public_key())
    assert not t.verify({**good, "signature": "not base64!"}, PUB)
    assert not t.verify({k: v for k, v in good.items() if k != "signature"}, PUB)


def test_signed_drops_empty_values_and_adds_a_verifiable_signature():
    out = t.signed(FIELDS, KEY)
    assert "reqReserved" not in out and out["signature"] == SIGNATURE
    assert t.verify(out, PUB)


# -- ids, time, money ----------------------------------------------------------------
@given(st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyz", min_size=24, max_size=24),
       st.sampled_from(["pay", "rfd"]))
def test_paycore_ids_round_trip_through_order_ids(body, prefix):
    pid = f"{prefix}_{body}"
    oid = t.to_order_id(pid)
    assert "_" not in oid and 8 <= len(oid) <= 40 and oid.isalnum()
    assert t.from_order_id(oid) == pid


def test_order_id_mapping_edges():
    assert t.to_order_id("pay_0123456789abcdefghijklmn") == "pay0123456789abcdefghijklmn"
    assert t.to_order_id("ABCDEFGH12") == "ABCDEFGH12"          # already valid: unchanged
    assert t.from_order_id("ABCDEFGH12") == "ABCDEFGH12"
    for bad in ("pay-0123456789", "short", "x" * 41, "pay_ABC"):
        with pytest.raises(ValueError):
            t.to_order_id(bad)


def test_cancel_order_id_is_derived_alphanumeric_and_bounded():
    oid = "pay0123456789abcdefghijklmn"
    assert t.cancel_order_id(oid) == "C" + oid == t.cancel_order_id(oid)
    assert len(t.cancel_order_id("A" * 40)) == 40


def test_txn_time_is_beijing_time():
    assert t.txn_time(PAID_AT) == "20240102003000"
    assert t.txn_time(PAID_AT.replace(tzinfo=None)) == "20240102003000"    # naive = UTC
    assert t.parse_txn_time("20240102003000") == PAID_AT
    for bad in ("2024010200300", "2024-01-02 00:3", "20241302003000"):
        with pytest.raises(ValueError):
            t.parse_txn_time(bad)


def test_trace_time_takes_the_year_of_txn_time_and_rolls_over_new_year():
    assert t.trace_time_to_datetime("0102003005", "20240102003000") == datetime(
        2024, 1, 2, 0, 30, 5, tzinfo=t.BEIJING)
    assert t.trace_time_to_datetime("0101000001", "20231231235959").year == 2024
    assert t.trace_time_to_datetime("", "20240102003000") is None
    assert t.trace_time_to_datetime("0102003005", "garbage") is None


def test_txn_amt_is_fen_as_a_plain_integer():
    assert t.fen_to_txn_amt(1) == "1" and t.fen_to_txn_amt(123456) == "123456"
    for bad in (0, -1, True, 1.5, "12"):
        with pytest.raises(ValueError):
            t.fen_to_txn_amt(bad)  # type: ignore[arg-type]
    assert t.txn_amt_to_fen("000123") == 123
    for bad in ("", "1.00", "-1", "12a", "1" * 13, " 1"):
        with pytest.raises(ValueError):
            t.txn_amt_to_fen(bad)


def test_settle_date_is_mmdd_and_maps_back_to_the_latest_such_day():
    assert t.settle_date(date(2024, 1, 2)) == "0102"
    assert t.settle_date_to_day("0102", date(2024, 3, 1)) == date(2024, 1, 2)
    assert t.settle_date_to_day("1231", date(2024, 1, 2)) == date(2023, 12, 31)
    with pytest.raises(ValueError):
        t.settle_date_to_day("1332", date(2024, 1, 2))


# -- encodings --------------------------------------------------------------------------
def test_answers_split_brace_aware_and_keep_equals_in_values():
    text = "respCode=00&reserved={seType=04&x=y}&signature=ab+/c==&respMsg=成功[0000000]"
    assert t.parse_answer(text) == {"respCode": "00", "reserved": "{seType=04&x=y}", "signature": "ab+/c==",
                                    "respMsg": "成功[0000000]"}
    assert t.parse_answer(t.encode_answer({"a": "1", "b": "{c=d}"})) == {"a": "1", "b": "{c=d}"}
    for bad in ("<html>", "a=1&a=2", "a={b=1", "a=1}", "=1", ""):
        with pytest.raises(ValueError):
            t.parse_answer(bad)


def test_composite_fields_round_trip():
    assert t.composite({"seType": "04"}) == "{seType=04}"
    assert t.parse_composite("{wallet=applepay&payment=pay_x}") == {"wallet": "applepay", "payment": "pay_x"}
    assert t.parse_composite("{}") == {}
    with pytest.raises(ValueError):
        t.parse_composite("wallet=applepay")


def test_form_round_trip_and_rejects_non_forms():
    fields = {"respMsg": "成功 & ok", "signature": "a+b/c==", "reqReserved": "{wallet=applepay}"}
    assert t.parse_form(t.encode_form(fields)) == fields
    for bad in (b"\xff\xfe", b"a=1&a=2", b"no-equals"):
        with pytest.raises(ValueError):
            t.parse_form(bad)


# -- sensitive fields and chip data ----------------------------------------------------
def test_sensitive_fields_are_pkcs1v15_encrypted_for_unionpay():
    enc = t.encrypt_sensitive("6225880000000001", PUB)
    assert "6225880000000001" not in enc
    assert KEY.decrypt(base64.b64decode(enc), padding.PKCS1v15()) == b"6225880000000001"
    assert t.decrypt_sensitive(enc, KEY) == "6225880000000001"


def test_customer_info_hides_the_expiry_in_encrypted_info():
    info = t.customer_info("2812", PUB)
    outer = base64.b64decode(info).decode()
    assert outer.startswith("{encryptedInfo=") and "2812" not in outer
    assert t.parse_customer_info(info, KEY) == {"expired": "2812"}


def test_tlv_parses_multibyte_tags_and_long_lengths():
    long_value = bytes(range(200))
    hex_data = t.tlv_build([("9F02", bytes.fromhex("000000001234")), ("5F2A", b"\x01\x56"), ("DF01", long_value)])
    assert hex_data.startswith("9F0206000000001234")
    assert "DF0181C8" in hex_data
    assert t.tlv_parse(hex_data) == [("9F02", bytes.fromhex("000000001234")), ("5F2A", b"\x01\x56"),
                                     ("DF01", long_value)]
    for bad in ("9F02", "9F0206000000", "zz", "9F0284FFFFFFFF"):
        with pytest.raises(ValueError):
            t.tlv_parse(bad)


def test_ic_trans_data_carries_the_cryptogram_as_9f26_replacing_the_chips():
    out = t.ic_trans_data("9F2608AAAAAAAAAAAAAAAA9F360200A1", "0123456789abcdef")
    assert t.tlv_parse(out) == [("9F36", b"\x00\xa1"), ("9F26", bytes.fromhex("0123456789ABCDEF"))]
    assert t.ic_trans_data(None, "AgAAAAAA") == "9F26084167414141414141"  # non-hex travels as text
    with pytest.raises(ValueError):
        t.ic_trans_data("9F02", "00")


# -- requests ----------------------------------------------------------------------------
def test_barcode_request_is_b2c_consume_with_qr_no():
    path, f = t.pay_request(pay_req(Method.BARCODE, auth_code="6212345678901234567"), MER)
    assert path == t.BACK_TRANS_PATH
    assert f == {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "certId": "68759663125",
                 "txnType": "01", "txnSubType": "06", "bizType": "000000", "channelType": "08",
                 "accessType": "0", "merId": "777290058110048", "txnTime": "20240102003000",
                 "orderId": "pay0123456789abcdefghijklmn", "txnAmt": "1234", "currencyCode": "156",
                 "backUrl": "https://pay.example.com/notify/unionpay", "qrNo": "6212345678901234567"}
    with pytest.raises(ValueError):
        t.pay_request(pay_req(Method.BARCODE), MER)
    with pytest.raises(ValueError):
        t.pay_request(pay_req(Method.BARCODE, auth_code="62abc"), MER)


def test_qr_and_app_requests():
    path, f = t.pay_request(pay_req(Method.QR), MER)
    assert (path, f["txnSubType"], f["payTimeout"]) == (t.BACK_TRANS_PATH, "07", "20240102003500")
    path, f = t.pay_request(pay_req(Method.APP), MER, se_type="04")
    assert (path, f["txnSubType"], f["bizType"], f["reserved"]) == (t.APP_TRANS_PATH, "01", "000201", "{seType=04}")
    with pytest.raises(ValueError):
        t.pay_request(pay_req(Method.JSAPI), MER)


def test_nfc_request_encrypts_the_token_and_expiry_and_marks_the_wallet():
    nfc = NfcData(token="6225880000000001", expiry="2812", cryptogram="0123456789ABCDEF", wallet="huaweipay",
                  emv_data="9F02060000000012349F3602001A")
    path, f = t.pay_request(pay_req(Method.NFC, nfc=nfc), MER, encrypt_key=PUB)
    assert (path, f["txnSubType"], f["encryptCertId"]) == (t.BACK_TRANS_PATH, "01", "69042905377")
    assert t.decrypt_sensitive(f["accNo"], KEY) == "6225880000000001"
    assert t.parse_customer_info(f["customerInfo"], KEY) == {"expired": "2812"}
    assert dict(t.tlv_parse(f["ICTransData"]))["9F26"] == bytes.fromhex("0123456789ABCDEF")
    assert f["reqReserved"] == "{wallet=huaweipay}"
    assert all("6225880000000001" not in v for v in f.values())
    with pytest.raises(ValueError):
        t.pay_request(pay_req(Method.NFC), MER, encrypt_key=PUB)


def test_refund_query_cancel_and_file_requests():
    rr = RefundRequest("rfd_0123456789abcdefghijklmn", "pay_0123456789abcdefghijklmn", "202401020030000000001",
                       1234, 100, None, "https://pay.example.com/notify/unionpay/refund")
    f = t.refund_request(rr, MER, PAID_AT)
    assert (f["txnType"], f["orderId"], f["origQryId"], f["txnAmt"]) == (
        "04", "rfd0123456789abcdefghijklmn", "202401020030000000001", "100")
    assert f["reqReserved"] == "{payment=pay_0123456789abcdefghijklmn}"
    with pytest.raises(ValueError):
        t.refund_request(RefundRequest("rfd_0123456789abcdefghijklmn", "pay_x", None, 1, 1, None, "u"), MER, PAID_AT)
    q = t.query_request(MER, "pay0123456789abcdefghijklmn", PAID_AT)
    assert (q["txnType"], q["txnSubType"], q["txnTime"]) == ("00", "00", "20240102003000")
    c = t.cancel_request(MER, "pay0123456789abcdefghijklmn", "Q1", 1234, PAID_AT)
    assert (c["txnType"], c["orderId"], c["origQryId"], "backUrl" in c) == (
        "31", "Cpay0123456789abcdefghijklmn", "Q1", False)
    fr = t.file_request(MER, date(2024, 1, 2), PAID_AT)
    assert (fr["txnType"], fr["txnSubType"], fr["settleDate"], fr["fileType"]) == ("76", "01", "0102", "00")


# -- answers ------------------------------------------------------------------------------
PAID = {"respCode": "00", "respMsg": "成功", "queryId": "Q1", "txnAmt": "1234", "txnTime": "20240102003000",
        "traceTime": "0102003005"}


def test_pay_answer_mapping():
    r = t.pay_result(PAID, Method.BARCODE)
    assert (r.status, r.channel_trade_no, r.amount, r.paid_at.year) == (TradeStatus.SUCCEEDED, "Q1", 1234, 2024)
    r = t.pay_result({**PAID, "reqReserved": "{wallet=samsungpay}"}, Method.NFC, wallet="applepay")
    assert r.wallet == "samsungpay"
    assert t.pay_result({"respCode": "05", "queryId": "Q1"}, Method.BARCODE).status is TradeStatus.PROCESSING
    declined = t.pay_result({"respCode": "64", "respMsg": "卡上的余额不足"}, Method.BARCODE)
    assert (declined.status, declined.failure_code, declined.failure_message) == (
        TradeStatus.FAILED, "64", "卡上的余额不足")
    assert t.pay_result({"respCode": "00", "qrCode": "https://qr.95516.com/x"}, Method.QR).qr_code
    app = t.pay_result({"respCode": "00", "tn": "123"}, Method.APP, se_type="02")
    assert (app.status, app.pay_params) == (TradeStatus.PENDING, {"tn": "123", "seType": "02"})


@pytest.mark.parametrize("code", ["03", "04", "12"])
def test_unknown_pay_answers_are_retriable_system_errors(code):
    with pytest.raises(ChannelError) as e:
        t.pay_result({"respCode": code}, Method.BARCODE)
    assert e.value.retriable and e.value.kind == "system_error"


@pytest.mark.parametrize("code", ["10", "11", "13"])
def test_refused_requests_are_not_retriable(code):
    with pytest.raises(ChannelError) as e:
        t.pay_result({"respCode": code}, Method.BARCODE)
    assert not e.value.retriable


@pytest.mark.parametrize("code,msg,field", [("10", "报文格式错误[accNo/customerInfo/ICTransData]", "nfc.token"),
                                            ("13", "报文交易要素缺失[expired/9F26]", "nfc.expiry"),
                                            ("10", "报文格式错误[qrNo]", "auth_code"), ("10", "报文格式错误", None)])
def test_a_malformed_request_is_the_callers_error_naming_the_field(code, msg, field):
    with pytest.raises(ChannelError) as e:
        t.pay_result({"respCode": code, "respMsg": msg}, Method.NFC)
    assert e.value.caller and e.value.field == field and not e.value.retriable


def test_a_refused_signature_is_a_channel_fault():
    with pytest.raises(ChannelError) as e:
        t.pay_result({"respCode": "11", "respMsg": "验证签名失败"}, Method.NFC)
    assert not e.value.caller and e.value.kind == "rejected"


def test_pay_answer_without_what_the_method_needs_is_garbage():
    for a, m in (({"respCode": "00"}, Method.QR), ({"respCode": "00"}, Method.APP), ({}, Method.BARCODE)):
        with pytest.raises(ChannelError) as e:
            t.pay_result(a, m)
        assert e.value.kind == "garbage"


def test_query_answer_mapping():
    ok = {"respCode": "00", "origRespCode": "00", "queryId": "Q1", "txnAmt": "1234"}
    assert t.query_result(ok, Method.BARCODE).status is TradeStatus.SUCCEEDED
    assert t.query_result({**ok, "origRespCode": "05"}, Method.BARCODE).status is TradeStatus.PROCESSING
    assert t.query_result({**ok, "origRespCode": "05"}, Method.QR).status is TradeStatus.PENDING
    failed = t.query_result({**ok, "origRespCode": "64", "origRespMsg": "余额不足"}, Method.NFC)
    assert (failed.status, failed.failure_code) == (TradeStatus.FAILED, "64")
    assert t.query_result({"respCode": "34"}, Method.BARCODE).status is TradeStatus.NOT_FOUND
    for a in ({"respCode": "03"}, {"respCode": "37"}, {"respCode": "00"}):
        with pytest.raises(ChannelError) as e:
            t.query_result(a, Method.BARCODE)
        assert e.value.retriable


def test_refund_answers():
    assert t.refund_result({"respCode": "00", "queryId": "R1"}).status is RefundStatus.PROCESSING
    declined = t.refund_result({"respCode": "35", "respMsg": "原交易状态不正确"})
    assert (declined.status, declined.failure_code) == (RefundStatus.FAILED, "35")
    with pytest.raises(ChannelError):
        t.refund_result({"respCode": "04"})
    assert t.refund_query_result({"respCode": "00", "origRespCode": "00"}).status is RefundStatus.SUCCEEDED
    assert t.refund_query_result({"respCode": "00", "origRespCode": "03"}).status is RefundStatus.PROCESSING
    assert t.refund_query_result({"respCode": "00", "origRespCode": "01"}).status is RefundStatus.FAILED
    assert t.refund_query_result({"respCode": "34"}).failure_code == "34"


def test_cancel_answers():
    done = t.cancel_result({"respCode": "00", "origQryId": "Q1"}, TradeStatus.REVERSED)
    assert done is not None and (done.status, done.channel_trade_no) == (TradeStatus.REVERSED, "Q1")
    again = t.cancel_result({"respCode": "03"}, TradeStatus.REVERSED)
    assert again is not None and again.retry
    assert t.cancel_result({"respCode": "35"}, TradeStatus.CLOSED) is None
    with pytest.raises(ChannelError):
        t.cancel_result({"respCode": "11"}, TradeStatus.REVERSED)


# -- notifications ----------------------------------------------------------------------------
NOTE = {"txnType": "01", "txnSubType": "07", "merId": "777290058110048", "orderId": "pay0123456789abcdefghijklmn",
        "txnTime": "20240102003000", "txnAmt": "1234", "queryId": "Q1", "traceTime": "0102003005",
        "respCode": "00", "respMsg": "成功", "reqReserved": "{wallet=applepay}"}


def test_payment_notification_maps_back_to_paycore_ids():
    n = t.notification(NOTE)
    assert (n.kind, n.out_trade_no, n.amount, n.merchant_ref) == (
        "payment", "pay_0123456789abcdefghijklmn", 1234, "777290058110048")
    assert n.payment is not None and (n.payment.status, n.payment.wallet) == (TradeStatus.SUCCEEDED, "applepay")
    plain = t.notification({k: v for k, v in NOTE.items() if k != "reqReserved"}, wallet="huaweipay")
    assert plain.payment is not None and plain.payment.wallet == "huaweipay"


def test_refund_notification_names_the_payment_from_req_reserved():
    n = t.notification({**NOTE, "txnType": "04", "orderId": "rfd0123456789abcdefghijklmn", "txnAmt": "100",
                        "queryId": "R1", "reqReserved": "{payment=pay_0123456789abcdefghijklmn}"})
    assert (n.kind, n.out_trade_no, n.out_refund_no, n.amount) == (
        "refund", "pay_0123456789abcdefghijklmn", "rfd_0123456789abcdefghijklmn", 100)
    assert n.refund is not None and n.refund.status is RefundStatus.SUCCEEDED
    with pytest.raises(ValueError):
        t.notification({**NOTE, "txnType": "04", "reqReserved": ""})
    with pytest.raises(ValueError):
        t.notification({**NOTE, "txnType": "31"})


@pytest.fixture
def adapter(tmp_path: Path) -> UnionPayAdapter:
    ours = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "ours.pem").write_bytes(ours.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "provider.pem").write_bytes(PUB.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    settings = ChannelSettings(name="unionpay", base_url="http://127.0.0.1:9", mch_id="777290058110048",
                               serial_no="68759663125", provider_serial_no="69042905377",
                               private_key_file=str(tmp_path / "ours.pem"),
                               provider_public_key_file=str(tmp_path / "provider.pem"))
    return UnionPayAdapter(settings, None)  # type: ignore[arg-type]  # notifications need no HTTP


def provider_signed(fields: dict[str, str], key: rsa.RSAPrivateKey = KEY) -> bytes:
    return t.encode_form(t.signed({"certId": "69042905377", **fields}, key))


async def test_notification_verified_and_tampering_rejected(adapter):
    body = provider_signed(NOTE)
    note = await adapter.parse_notification("payment", {}, body)
    assert note.out_trade_no == "pay_0123456789abcdefghijklmn"
    tampered = body.replace(b"txnAmt=1234", b"txnAmt=1")
    forged = provider_signed(NOTE, OTHER_KEY)
    wrong_cert = t.encode_form(t.signed({**NOTE, "certId": "1"}, KEY))
    for bad, reason in ((tampered, "bad_signature"), (forged, "bad_signature"), (wrong_cert, "bad_signature"),
                        (b"\xff\x00", "malformed"), (provider_signed({**NOTE, "merId": "1"}), "wrong_merchant"),
                        (provider_signed({**NOTE, "txnType": "31"}), "malformed")):
        with pytest.raises(NotificationRejected) as e:
            await adapter.parse_notification("payment", {}, bad)
        assert e.value.reason == reason
    assert adapter.ack(True).body == b"ok" and adapter.ack(True).status == 200
    assert adapter.ack(False).status != 200


# -- statement --------------------------------------------------------------------------------
ROWS = [
    {"txnType": "01", "queryId": "Q1", "orderId": "pay0123456789abcdefghijklmn", "txnAmt": "1234",
     "txnTime": "20240102003000", "respCode": "00"},
    {"txnType": "04", "queryId": "R1", "orderId": "rfd0123456789abcdefghijklmn", "origQryId": "Q1",
     "origOrderId": "pay0123456789abcdefghijklmn", "txnAmt": "100", "txnTime": "20240102010000", "respCode": "00"},
    {"txnType": "31", "queryId": "C1", "orderId": "Cpay0123456789abcdefghijklmn", "txnAmt": "1",
     "txnTime": "20240102020000", "respCode": "00"},
]


def test_statement_line_is_fixed_width():
    line = t.statement_line(ROWS[0])
    assert len(line) == t.FILE_LINE_LENGTH
    assert line.startswith("01 Q1" + " " * 20 + "pay0123456789abcdefghijklmn")
    assert " 000000001234 20240102003000 00" in line
    assert t.parse_statement_line(line)["txnAmt"] == "000000001234"
    with pytest.raises(ValueError):
        t.parse_statement_line(line[:-1])
    with pytest.raises(ValueError):
        t.statement_line({"queryId": "Q" * 22})


def test_statement_file_is_base64_deflated_zip_and_parses_back():
    name, content = t.statement_content("777290058110048", date(2024, 1, 2), ROWS)
    assert name == "777290058110048_20240102.zip"
    with zipfile.ZipFile(io.BytesIO(zlib.decompress(base64.b64decode(content)))) as zf:
        assert zf.namelist() == ["INN24010288ZM_777290058110048"]
    lines = t.parse_statement(content, "777290058110048", date(2024, 1, 2))
    assert [(x.kind, x.out_trade_no, x.channel_trade_no, x.amount, x.status, x.out_refund_no) for x in lines] == [
        ("payment", "pay_0123456789abcdefghijklmn", "Q1", 1234, "SUCCEEDED", None),
        ("refund", "pay_0123456789abcdefghijklmn", "Q1", 100, "REFUNDED", "rfd_0123456789abcdefghijklmn"),
    ]
    for bad in ("not base64", base64.b64encode(b"not deflate").decode()):
        with pytest.raises(ValueError):
            t.parse_statement(bad, "777290058110048", date(2024, 1, 2))
    with pytest.raises(ValueError):   # another day's file
        t.parse_statement(content, "777290058110048", date(2024, 1, 3))


# -- 云闪付 open platform: frontToken and upsdk.config -----------------------------------------
def test_front_token_request_is_signed_over_the_sorted_fields_and_the_secret() -> None:
    body = t.front_token_request("a5949221470c4059b9b0b45a90c81527", "s3cret", "Wm3WZYTPz0wzccnW", 1414587457)
    source = b"appId=a5949221470c4059b9b0b45a90c81527&nonceStr=Wm3WZYTPz0wzccnW&secret=s3cret&timestamp=1414587457"
    assert body == {"appId": "a5949221470c4059b9b0b45a90c81527", "nonceStr": "Wm3WZYTPz0wzccnW",
                    "timestamp": "1414587457", "signature": hashlib.sha256(source).hexdigest()}
    assert "s3cret" not in repr(body)                       # the secret signs, it is never sent
    assert t.check_front_token_request(body, "a5949221470c4059b9b0b45a90c81527", "s3cret") is None
    assert t.check_front_token_request(body, "a5949221470c4059b9b0b45a90c81527", "other") == "signature"
    assert t.check_front_token_request(body, "another-app", "s3cret") == "unknown appId"
    with pytest.raises(ValueError):
        t.front_token_request("app", "s", "not a nonce!", 1)


def test_upsdk_config_signature_covers_token_and_page_url() -> None:
    """The documented string: appId, frontToken, nonceStr, timestamp, url, sorted, no secret."""
    cfg = t.upsdk_config("a5949221470c4059b9b0b45a90c81527", "U72eJp21SkuzKRdUK+jyFw==",
                         "http://mobile.xxx.com?params=value", "Wm3WZYTPz0wzccnW", 1414587457)
    source = (b"appId=a5949221470c4059b9b0b45a90c81527&frontToken=U72eJp21SkuzKRdUK+jyFw==&"
              b"nonceStr=Wm3WZYTPz0wzccnW&timestamp=1414587457&url=http://mobile.xxx.com?params=value")
    assert cfg == {"appId": "a5949221470c4059b9b0b45a90c81527", "nonceStr": "Wm3WZYTPz0wzccnW",
                   "timestamp": "1414587457", "signature": hashlib.sha256(source).hexdigest(), "debug": False}
    assert "U72eJp21" not in repr(cfg)                      # the token stays on the server
    ok = ("a5949221470c4059b9b0b45a90c81527", "U72eJp21SkuzKRdUK+jyFw==", "http://mobile.xxx.com?params=value")
    assert t.upsdk_config_valid(cfg, *ok)
    assert not t.upsdk_config_valid(cfg, ok[0], ok[1], "http://localhost/c/x")      # another page
    assert not t.upsdk_config_valid(cfg, ok[0], "another-token", ok[2])             # another token
    assert not t.upsdk_config_valid({**cfg, "signature": "0" * 64}, *ok)
    assert not t.upsdk_config_valid({**cfg, "timestamp": 1414587457}, *ok)          # not a string


@pytest.mark.parametrize(("status", "body", "kind", "retriable"), [
    (200, b'{"resp":"00","msg":"ok","params":{"frontToken":"tok+/=","expiresIn":7200}}', None, None),
    (200, b'{"resp":"BC0025","msg":"\\u9a8c\\u7b7e\\u5931\\u8d25","params":{}}', "rejected", False),
    (200, b'{"resp":"00","params":{"frontToken":"","expiresIn":7200}}', "garbage", True),
    (200, b'{"resp":"00","params":{"frontToken":"tok","expiresIn":"soon"}}', "garbage", True),
    (200, b"<html>busy</html>", "garbage", True),
    (502, b"", "http_5xx", True),
])
def test_front_token_answers(status: int, body: bytes, kind: str | None, retriable: bool | None) -> None:
    if kind is None:
        assert t.front_token_result(status, body) == ("tok+/=", 7200)
        return
    with pytest.raises(ChannelError) as err:
        t.front_token_result(status, body)
    assert (err.value.kind, err.value.retriable) == (kind, retriable)
