"""Alipay transformers and signers against fixed vectors.

TEST_KEY_PEM below is a throw-away RSA key generated for these tests only (a
test vector, never used anywhere else); signatures made through the
transformers are compared with ones computed here with ``cryptography``
directly.
"""
from __future__ import annotations

import base64
import json
from datetime import date, datetime, timezone
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from channels.alipay import transformers as t
from channels.base import ChannelError, Method, RefundStatus, TradeStatus

TEST_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCU5b34B0qLl58B
JFVVqbpGEiEAyz8T6mxd73YDq00mh7oq72zT6vF0T3h2I99ZNp8yJTsc8jHJZ+pK
3yRKIx18PwgRUPHhnD6IopayhYNZbIJOl+FYfHlrLGmbS4AODk6CzqWsUxsVyxSB
6Z1AF1q5lHOIYFtn82/h7L76fZ+mL/FBl4KsO8k+nvRWLe4t5RQdS3VbXhoG5iqa
5T4B1z3v9b/VAbuxIQFh4/jtwi5PnjMNTLAEHu+kXjnHGqzCOifmJ0feiTVEE5xA
mIPj5XT1sqyHkMYT7E1AKRcwo1Fmp149q3AfswqbC7nINIHEKE6VjMIWaodfGMqC
zzUdPgTDAgMBAAECggEAC/BdKmsA2RWOVdI0fdrPCVK0NVljeugHY9Bq4/UGo1bE
7WMArmaLXfo7T5NYk54zs83uO5SkVYc3O/6nBo/8C49ASQ2QMrj+mKHoBHN8XZ2I
pN88kR98Wt59fBeL/1SG8UOH+QigeaX5d65xAe3j3YQf1jXa6AhjsB4o2z8nn6ff
TOuNEZc2yTW9XtNSbYYo9BdDMSOeWjAJjPbrWHjY+9v787f1sKAnroVOoaed+wAm
rvCrTxX4cyeojQ5O68yJ/nJ2ON/qvjk0IX5dQOQD16xH4WdlSZ7ElmDJNv0Rpl4a
dNlhd3pL9aBv/ttkR9v+ZeSxSkrmMsDc4xpg97CAmQKBgQDOEqOdLLBSBBqlcnoL
xMm19bttvFfr6QtAzLSmzWEN7SbIjWvkVXXh8lOj/rx9l6EeV5e3UGkhNYs5lRk2
ZFtvw9Bs8XQvYgpBzq4cOaWthl1ttkQEvVESvzOjihx006lvPByRwtQwwCdTl0dA
MiSy+qA9AKY/zogpwKJNavrmmwKBgQC4+OJ8Wzt+dPmtQAGOKHrzVh7BUYQKGunF
G3SeJv3tpOx30ptZxI//Q7+vvPQ4CFmFZ+x3hJe3paE7VN6CazSkC02tsiwb3KGx
G1ZHw0k6eXcCFWMXlcnzvGsi6zo+T+viDMGU5oGHKaH5Jj5vdDItjizexdBWWjqB
TJDbpnqo+QKBgDVimsRTGXKF4alO2NNHrcHX4TByhIx3GRU2cu5rcmM7Nrrp+DN0
+E8KiiSID6ixqWnE42b4C+QwjNrkB14R7aYsokg23RSRX3rg4jYpsQQdNQMBHunj
aadjpSsO0oRpeRF6DySrxnDCtu1u2WSGGP/M8cob6vXIuXmnj+RifJFVAoGAZtfK
ZUX8YCT9pPwPYVDUe3MIioeeGFg6XaMURdJ8IKMv7rckNNb7EPxEGZu/VWAfFfNg
IFuSV0M5z9kyFeUxUXwPZmHH8H3NUMFYSXIkxuQ97OSjQbvAm0nJb5LFwVuCVR6u
ivFWVyYornQ7BpDeTUHdZMcrPLfSC43chKOdU1ECgYB+YfD1sd6X4SjCI0YwaDAd
IWV6INNZCuqbt6O9uJnEde7VKRQukVODjb1ynX6MRDXVcBNRUtOTz8CPGrxtYc8z
1GU2H7xvFtblnK2aAbc96c4FAT6BpF2pwfxWuipRwHlBHFvYT5oC0kTjMH5DxhoA
+mcuitxPn2qsanRn5yhuCg==
-----END PRIVATE KEY-----
"""

KEY = serialization.load_pem_private_key(TEST_KEY_PEM.encode(), password=None)
assert isinstance(KEY, rsa.RSAPrivateKey)
PUB = KEY.public_key()
PUB_PEM = PUB.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def direct_sign(content: str, key: rsa.RSAPrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


# -- money ----------------------------------------------------------------------------

@pytest.mark.parametrize("fen,yuan", [(0, "0.00"), (1, "0.01"), (10, "0.10"), (99, "0.99"), (100, "1.00"),
                                      (1234, "12.34"), (123456789, "1234567.89")])
def test_fen_to_yuan_uses_two_decimals(fen: int, yuan: str) -> None:
    assert t.fen_to_yuan(fen) == yuan
    assert t.yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_fen_to_yuan_refuses_non_fen(bad: object) -> None:
    with pytest.raises(ValueError):
        t.fen_to_yuan(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("yuan,fen", [("12", 1200), ("12.3", 1230), ("0.1", 10), ("0.01", 1), (" 7.00 ", 700),
                                      ("00.50", 50)])
def test_yuan_to_fen_accepts_alipay_amounts(yuan: str, fen: int) -> None:
    assert t.yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("bad", ["", "1.234", "1e3", ".5", "1.", "1,00", "NaN", "-1.00", "+1.00", "1 .00", "１.00"])
def test_yuan_to_fen_refuses_anything_else(bad: str) -> None:
    with pytest.raises(ValueError):
        t.yuan_to_fen(bad)


def test_negative_yuan_only_where_allowed() -> None:
    assert t.yuan_to_fen("-10.05", allow_negative=True) == -1005


@given(st.integers(min_value=0, max_value=10**15))
def test_fen_yuan_round_trip(fen: int) -> None:
    assert t.yuan_to_fen(t.fen_to_yuan(fen)) == fen


def test_beijing_time_is_utc_plus_8() -> None:
    dt = datetime(2024, 1, 1, 16, 0, 5, tzinfo=timezone.utc)
    assert t.beijing_time(dt) == "2024-01-02 00:00:05"
    assert t.parse_beijing_time("2024-01-02 00:00:05") == dt
    assert t.parse_beijing_time("2024/01/02") is None and t.parse_beijing_time(None) is None


# -- signing -----------------------------------------------------------------------------

def test_request_sign_content_sorts_and_drops_sign_and_empties() -> None:
    params = {"method": "alipay.trade.query", "app_id": "2016", "sign": "xx", "notify_url": "",
              "biz_content": '{"out_trade_no":"pay_1"}', "charset": "utf-8", "sign_type": "RSA2"}
    assert t.request_sign_content(params) == (
        'app_id=2016&biz_content={"out_trade_no":"pay_1"}&charset=utf-8&method=alipay.trade.query&sign_type=RSA2')


def test_notify_sign_content_drops_sign_and_sign_type_keeps_empties() -> None:
    params = {"trade_status": "TRADE_SUCCESS", "sign_type": "RSA2", "sign": "x", "body": "", "app_id": "1"}
    assert t.notify_sign_content(params) == "app_id=1&body=&trade_status=TRADE_SUCCESS"


def test_rsa2_sign_matches_cryptography_directly() -> None:
    content = "a=1&b=中文&c=x y"
    assert t.rsa2_sign(KEY, content) == direct_sign(content)


def test_rsa2_verify_accepts_genuine_and_rejects_tampered() -> None:
    content = "app_id=2016&method=alipay.trade.pay"
    sig = direct_sign(content)
    assert t.rsa2_verify(PUB, content, sig)
    assert not t.rsa2_verify(PUB, content + "&x=1", sig)
    assert not t.rsa2_verify(PUB, content, direct_sign(content, OTHER_KEY))
    assert not t.rsa2_verify(PUB, content, "not base64!!")


def test_keys_load_from_pem_and_from_alipay_bare_base64() -> None:
    bare_private = "".join(TEST_KEY_PEM.strip().splitlines()[1:-1])
    bare_public = "".join(PUB_PEM.strip().splitlines()[1:-1])
    k, p = t.load_private_key(bare_private), t.load_public_key(bare_public)
    assert t.rsa2_sign(k, "x") == direct_sign("x")
    assert t.rsa2_verify(p, "x", direct_sign("x"))
    assert t.load_public_key(PUB_PEM).public_numbers() == PUB.public_numbers()


def test_common_params_signed_over_sorted_form() -> None:
    ts = datetime(2024, 3, 1, 4, 5, 6, tzinfo=timezone.utc)
    params = t.common_params(app_id="2016091200494382", api_method=t.PRECREATE,
                             biz={"subject": "咖啡", "total_amount": "1.00"}, timestamp=ts,
                             notify_url="http://n/notify/alipay", app_auth_token=None)
    assert params == {
        "app_id": "2016091200494382", "method": "alipay.trade.precreate", "charset": "utf-8", "sign_type": "RSA2",
        "timestamp": "2024-03-01 12:05:06", "version": "1.0",
        "biz_content": '{"subject":"咖啡","total_amount":"1.00"}', "notify_url": "http://n/notify/alipay"}
    signed = t.sign_params(params, KEY)
    expected_content = ('app_id=2016091200494382&biz_content={"subject":"咖啡","total_amount":"1.00"}'
                        '&charset=utf-8&method=alipay.trade.precreate&notify_url=http://n/notify/alipay'
                        '&sign_type=RSA2&timestamp=2024-03-01 12:05:06&version=1.0')
    assert signed["sign"] == direct_sign(expected_content)


def test_app_auth_token_is_a_signed_common_parameter() -> None:
    params = t.common_params(app_id="1", api_method=t.QUERY, biz={}, timestamp=datetime.now(timezone.utc),
                             app_auth_token="tok_sub")
    assert params["app_auth_token"] == "tok_sub"
    assert "app_auth_token=tok_sub" in t.request_sign_content(params)


def test_order_string_carries_every_signed_parameter_with_sign_last() -> None:
    params = t.common_params(app_id="1", api_method=t.APP_PAY, biz={"subject": "a&b=c+d"},
                             timestamp=datetime(2024, 1, 1, tzinfo=timezone.utc), notify_url="http://x/n?a=1")
    signed = t.sign_params(params, KEY)
    s = t.order_string(signed)
    pairs = parse_qsl(s, keep_blank_values=True)
    assert pairs[-1][0] == "sign" and dict(pairs) == signed
    assert t.rsa2_verify(PUB, t.request_sign_content(dict(pairs)), dict(pairs)["sign"])


# -- pay biz ----------------------------------------------------------------------------

EXPIRE = datetime(2024, 5, 1, 2, 0, 0, tzinfo=timezone.utc)


def test_barcode_biz_has_scene_and_auth_code_and_no_expiry() -> None:
    spec = t.pay_biz(method=Method.BARCODE, out_trade_no="pay_a", amount=1234, subject="s", expire_at=EXPIRE,
                     auth_code="283456789012345678", store_id="S1", terminal_id="T1")
    assert spec.api_method == "alipay.trade.pay"
    assert spec.biz == {"out_trade_no": "pay_a", "total_amount": "12.34", "subject": "s",
                        "product_code": "FACE_TO_FACE_PAYMENT", "scene": "bar_code",
                        "auth_code": "283456789012345678", "store_id": "S1", "terminal_id": "T1"}
    with pytest.raises(ValueError):
        t.pay_biz(method=Method.BARCODE, out_trade_no="pay_a", amount=1, subject="s", expire_at=EXPIRE)


def test_order_methods_expire_and_name_their_api() -> None:
    for method, api, code in ((Method.QR, t.PRECREATE, "FACE_TO_FACE_PAYMENT"),
                              (Method.H5, t.WAP_PAY, "QUICK_WAP_WAY"), (Method.APP, t.APP_PAY, "QUICK_MSECURITY_PAY")):
        spec = t.pay_biz(method=method, out_trade_no="pay_a", amount=1, subject="s", expire_at=EXPIRE)
        assert spec.api_method == api and spec.biz["product_code"] == code
        assert spec.biz["time_expire"] == "2024-05-01 10:00:00"
    h5 = t.pay_biz(method=Method.H5, out_trade_no="p", amount=1, subject="s", expire_at=EXPIRE, quit_url="http://q")
    assert h5.biz["quit_url"] == "http://q"


def test_jsapi_biz_needs_the_buyer() -> None:
    spec = t.pay_biz(method=Method.JSAPI, out_trade_no="p", amount=1, subject="s", expire_at=EXPIRE,
                     payer={"user_id": "2088102177846875"}, sub_merchant_id="2088000000000001")
    assert spec.api_method == "alipay.trade.create"
    assert spec.biz["buyer_id"] == "2088102177846875"
    assert spec.biz["sub_merchant"] == {"merchant_id": "2088000000000001"}
    assert t.pay_biz(method=Method.JSAPI, out_trade_no="p", amount=1, subject="s", expire_at=EXPIRE,
                     payer={"open_id": "074a"}).biz["buyer_open_id"] == "074a"
    with pytest.raises(ValueError):
        t.pay_biz(method=Method.JSAPI, out_trade_no="p", amount=1, subject="s", expire_at=EXPIRE)


def test_unsupported_method_is_refused() -> None:
    with pytest.raises(ValueError):
        t.pay_biz(method=Method.NFC, out_trade_no="p", amount=1, subject="s", expire_at=EXPIRE)


def test_refund_and_query_biz() -> None:
    assert t.refund_biz(out_trade_no="pay_a", channel_trade_no="2024", out_refund_no="rfd_b", refund_amount=5,
                        reason="r") == {"out_trade_no": "pay_a", "trade_no": "2024", "out_request_no": "rfd_b",
                                        "refund_amount": "0.05", "refund_reason": "r"}
    assert t.refund_query_biz(out_trade_no="pay_a", channel_trade_no=None, out_refund_no="rfd_b") == {
        "out_trade_no": "pay_a", "out_request_no": "rfd_b", "query_options": ["gmt_refund_pay"]}
    assert t.bill_biz(date(2024, 2, 29)) == {"bill_type": "trade", "bill_date": "2024-02-29"}


def test_paycore_ids_are_valid_alipay_ids_unchanged() -> None:
    for no in ("pay_0123456789abcdefghijklmn", "rfd_0123456789abcdefghijklmn"):
        assert t.OUT_NO_RE.match(no)
    assert not any(t.OUT_NO_RE.match(bad) for bad in ("pay-1", "x" * 65, "pay_a\n", ""))


# -- answers ------------------------------------------------------------------------------

def test_answer_is_verified_over_its_raw_member_text() -> None:
    raw = '{ "code" : "10000",\n  "msg":"Success", "qr_code":"https:\\/\\/qr.alipay.com\\/bax0",' \
          ' "note":"brace } and \\"quote\\" \\u4e2d", "nested": {"a": [1, {"b": "}"}]} }'
    text = f'{{"sign" : "{direct_sign(raw)}" ,\n "alipay_trade_precreate_response" :  {raw}\n}}'
    ans = t.open_answer(text, t.PRECREATE)
    assert ans.raw == raw
    assert ans.body["qr_code"] == "https://qr.alipay.com/bax0" and ans.body["note"] == 'brace } and "quote" 中'
    assert t.rsa2_verify(PUB, ans.raw, ans.sign or "")
    # what a client that re-serialises would check, and why it must not
    assert not t.rsa2_verify(PUB, json.dumps(ans.body, separators=(",", ":"), ensure_ascii=False), ans.sign or "")


@pytest.mark.parametrize("style", [0, 1, 2])
def test_rendered_answers_of_every_layout_open_and_verify(style: int) -> None:
    body = {"code": "10000", "msg": "Success", "qr_code": "https://qr.alipay.com/x", "sub_msg": "中文"}
    text = t.render_answer("alipay_trade_precreate_response", body, lambda raw: direct_sign(raw), style=style)
    ans = t.open_answer(text, t.PRECREATE)
    assert ans.body == body and t.rsa2_verify(PUB, ans.raw, ans.sign or "")


def test_unsigned_and_error_response_answers_open() -> None:
    text = t.render_answer("error_response", {"code": "40002", "sub_code": "isv.invalid-method"}, None)
    ans = t.open_answer(text, t.QUERY)
    assert ans.key == "error_response" and ans.sign is None


@pytest.mark.parametrize("text", ["", "[]", "garbage", '{"alipay_trade_query_response":{}} tail',
                                  '{"other_response":{}}', '{"alipay_trade_query_response":[1]}',
                                  '{"alipay_trade_query_response":{},"sign":1}', '{"a" 1}', '{1:2}'])
def test_unreadable_answers_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        t.open_answer(text, t.QUERY)


@pytest.mark.parametrize("body,signed,retriable,kind", [
    ({"code": "20000", "sub_code": "isp.unknow-error"}, False, True, "system_error"),
    ({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, True, True, "system_error"),
    ({"code": "40002", "sub_code": "isv.invalid-signature"}, False, False, "rejected"),
    ({"code": "40001", "sub_code": "isv.missing-signature"}, True, False, "rejected"),
    ({"code": "10000"}, False, True, "bad_signature"),
    ({"code": "40004", "sub_code": "ACQ.BUYER_BALANCE_NOT_ENOUGH"}, False, True, "bad_signature"),
    ({"code": "99999"}, True, True, "garbage"),
])
def test_gateway_check_raises_the_right_error(body: dict, signed: bool, retriable: bool, kind: str) -> None:
    with pytest.raises(ChannelError) as e:
        t.gateway_check(body, signed=signed)
    assert e.value.retriable is retriable and e.value.kind == kind


def test_gateway_check_passes_business_codes() -> None:
    for code in ("10000", "10003", "40004"):
        assert t.gateway_check({"code": code, "sub_code": "ACQ.X"}, signed=True) == code


@pytest.mark.parametrize("status,method,paid,expected", [
    ("WAIT_BUYER_PAY", Method.BARCODE, False, TradeStatus.PROCESSING),
    ("WAIT_BUYER_PAY", Method.QR, False, TradeStatus.PENDING),
    ("WAIT_BUYER_PAY", None, False, TradeStatus.PENDING),
    ("TRADE_SUCCESS", Method.QR, True, TradeStatus.SUCCEEDED),
    ("TRADE_FINISHED", Method.BARCODE, True, TradeStatus.SUCCEEDED),
    ("TRADE_CLOSED", Method.QR, False, TradeStatus.CLOSED),
    ("TRADE_CLOSED", Method.BARCODE, True, TradeStatus.SUCCEEDED),   # paid, then fully refunded
])
def test_trade_status_mapping(status: str, method: Method | None, paid: bool, expected: TradeStatus) -> None:
    assert t.trade_status(status, method, paid=paid) is expected


def test_unknown_trade_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        t.trade_status("TRADE_PENDING", Method.QR, paid=False)


def test_pay_results() -> None:
    paid = t.pay_result("10000", {"trade_no": "2024", "total_amount": "12.34",
                                  "gmt_payment": "2024-01-02 00:00:05"}, Method.BARCODE)
    assert (paid.status, paid.channel_trade_no, paid.amount) == (TradeStatus.SUCCEEDED, "2024", 1234)
    assert paid.paid_at == datetime(2024, 1, 1, 16, 0, 5, tzinfo=timezone.utc)
    assert t.pay_result("10003", {"trade_no": "2024"}, Method.BARCODE).status is TradeStatus.PROCESSING
    declined = t.pay_result("40004", {"sub_code": "ACQ.BUYER_BALANCE_NOT_ENOUGH", "sub_msg": "买家余额不足"},
                            Method.BARCODE)
    assert (declined.status, declined.failure_code, declined.failure_message) == (
        TradeStatus.FAILED, "ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
    assert t.pay_result("40004", {"sub_code": "ACQ.TRADE_HAS_SUCCESS"}, Method.BARCODE).status is TradeStatus.SUCCEEDED
    qr = t.pay_result("10000", {"qr_code": "https://qr.alipay.com/x"}, Method.QR)
    assert (qr.status, qr.qr_code) == (TradeStatus.PENDING, "https://qr.alipay.com/x")
    js = t.pay_result("10000", {"trade_no": "2024"}, Method.JSAPI)
    assert (js.status, js.pay_params) == (TradeStatus.PENDING, {"trade_no": "2024"})
    for method, body in ((Method.QR, {}), (Method.JSAPI, {}), (Method.QR, {"qr_code": "x"})):
        with pytest.raises(ChannelError):
            t.pay_result("10003" if body else "10000", body, method)
    with pytest.raises(ChannelError):
        t.pay_result("10000", {"total_amount": "1.2.3"}, Method.BARCODE)


def test_query_results() -> None:
    missing = {"sub_code": "ACQ.TRADE_NOT_EXIST"}
    assert t.query_result("40004", missing, Method.BARCODE).status is TradeStatus.NOT_FOUND
    assert t.query_result("40004", missing, Method.APP).status is TradeStatus.PENDING   # not opened yet
    refunded = t.query_result("10000", {"trade_status": "TRADE_CLOSED", "send_pay_date": "2024-01-01 08:00:00",
                                        "total_amount": "1.00", "trade_no": "9"}, Method.BARCODE)
    assert (refunded.status, refunded.amount, refunded.channel_trade_no) == (TradeStatus.SUCCEEDED, 100, "9")
    with pytest.raises(ChannelError):
        t.query_result("10000", {"trade_status": "WHAT"}, Method.QR)
    with pytest.raises(ChannelError):
        t.query_result("40004", {"sub_code": "ACQ.INVALID_PARAMETER"}, Method.QR)


def test_cancel_results() -> None:
    retry = t.cancel_result({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR", "retry_flag": "Y"}, signed=True)
    assert retry is not None and retry.retry and retry.status is TradeStatus.PROCESSING
    for action in ("close", "refund"):
        res = t.cancel_result({"code": "10000", "retry_flag": "N", "action": action, "trade_no": "1"}, signed=True)
        assert res is not None and res.status is TradeStatus.REVERSED and not res.retry
    gone = t.cancel_result({"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST", "retry_flag": "N"}, signed=True)
    assert gone is not None and gone.status is TradeStatus.NOT_FOUND
    assert t.cancel_result({"code": "40004", "sub_code": "ACQ.TRADE_STATUS_ERROR"}, signed=True) is None


def test_close_results() -> None:
    assert t.close_result("10000", {"trade_no": "1"}).status is TradeStatus.CLOSED  # type: ignore[union-attr]
    # not found is not closed: an unscanned precreated QR can still be paid after trade.close
    assert t.close_result("40004", {"sub_code": "ACQ.TRADE_NOT_EXIST"}).status is TradeStatus.NOT_FOUND  # type: ignore[union-attr]
    assert t.close_result("40004", {"sub_code": "ACQ.TRADE_STATUS_ERROR"}) is None


def test_refund_results() -> None:
    assert t.refund_result("10000", {"fund_change": "Y"}).status is RefundStatus.SUCCEEDED  # type: ignore[union-attr]
    assert t.refund_result("10000", {"fund_change": "N"}) is None
    declined = t.refund_result("40004", {"sub_code": "ACQ.SELLER_BALANCE_NOT_ENOUGH"})
    assert declined is not None and (declined.status, declined.failure_code) == (
        RefundStatus.FAILED, "ACQ.SELLER_BALANCE_NOT_ENOUGH")
    assert t.refund_query_result("10000", {"refund_amount": "1.00"}).status is RefundStatus.SUCCEEDED
    assert t.refund_query_result("10000", {"refund_amount": "1.00", "refund_status": "REFUND_SUCCESS"}).status \
        is RefundStatus.SUCCEEDED
    assert t.refund_query_result("10000", {"refund_amount": "1.00", "refund_status": "REFUND_PROCESSING"}).status \
        is RefundStatus.PROCESSING
    none = t.refund_query_result("10000", {})
    # no data is not proof of no refund (one being made is not visible yet): re-send the same number
    assert (none.status, none.failure_code) == (RefundStatus.NOT_FOUND, "REFUND_NOT_EXIST")


# -- notifications --------------------------------------------------------------------------

def signed_notice(**fields: str) -> dict[str, str]:
    params = {"notify_type": "trade_status_sync", "notify_id": "n1", "app_id": "2016091200494382",
              "sign_type": "RSA2", "trade_no": "2024", "out_trade_no": "pay_a", "trade_status": "TRADE_SUCCESS",
              "total_amount": "12.34", "gmt_payment": "2024-01-02 00:00:05", **fields}
    params["sign"] = direct_sign(t.notify_sign_content(params))
    return params


def test_payment_notification_verifies_and_maps() -> None:
    params = signed_notice()
    assert t.rsa2_verify(PUB, t.notify_sign_content(params), params["sign"])
    note = t.notification_from_form(params)
    assert (note.kind, note.out_trade_no, note.merchant_ref, note.amount, note.notification_id) == (
        "payment", "pay_a", "2016091200494382", 1234, "n1")
    assert note.payment is not None and note.payment.status is TradeStatus.SUCCEEDED
    assert note.payment.channel_trade_no == "2024"


def test_tampered_notification_does_not_verify() -> None:
    params = signed_notice()
    for field, value in (("total_amount", "0.01"), ("out_trade_no", "pay_b"), ("sign_type", "RSA")):
        forged = dict(params, **{field: value})
        verified = t.rsa2_verify(PUB, t.notify_sign_content(forged), forged["sign"])
        assert verified is (field == "sign_type")   # sign_type is outside the signed content, by Alipay's rule


def test_refund_notification_maps_to_a_refund() -> None:
    note = t.notification_from_form(signed_notice(out_biz_no="rfd_x", refund_fee="2.00",
                                                  gmt_refund="2024-01-02 00:10:00", trade_status="TRADE_SUCCESS"))
    assert (note.kind, note.out_refund_no, note.amount) == ("refund", "rfd_x", 1234)
    assert note.refund is not None and note.refund.status is RefundStatus.SUCCEEDED


def test_closed_notification_is_closed() -> None:
    params = signed_notice(trade_status="TRADE_CLOSED")
    del params["gmt_payment"]
    note = t.notification_from_form(params)
    assert note.payment is not None and note.payment.status is TradeStatus.CLOSED


@pytest.mark.parametrize("change", [{"out_trade_no": ""}, {"trade_status": "BOGUS"}, {"total_amount": "1.234"},
                                    {"app_id": ""}, {"out_biz_no": "rfd", "refund_fee": "x"}])
def test_malformed_notifications_are_value_errors(change: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        t.notification_from_form(signed_notice(**change))


# -- bill ---------------------------------------------------------------------------------------

def test_bill_zip_round_trips_through_the_gbk_csv() -> None:
    at = datetime(2024, 1, 2, 10, 0, tzinfo=t.CST)
    rows = [
        t.BillRow(kind=t.KIND_PAYMENT, trade_no="2024010222001", out_trade_no="pay_a", subject="咖啡,大杯",
                  created=at, finished=at, order_amount=1234, received=1234),
        t.BillRow(kind=t.KIND_REFUND, trade_no="2024010222001", out_trade_no="pay_a", subject="咖啡,大杯",
                  created=at, finished=at, order_amount=1234, received=-234, out_request_no="rfd_b"),
        t.BillRow(kind=t.KIND_REFUND, trade_no="2024010222002", out_trade_no="pay_c", subject="x",
                  created=at, finished=at, order_amount=500, received=-500),
    ]
    data = t.bill_files("20881021479480600156", date(2024, 1, 2), rows, at)
    text = t.bill_detail_text(data)
    assert text.startswith("#支付宝业务明细查询\n") and "2024010222001\t" in text
    lines = t.parse_bill(text)
    assert [(ln.kind, ln.out_trade_no, ln.channel_trade_no, ln.amount, ln.status, ln.out_refund_no)
            for ln in lines] == [
        ("payment", "pay_a", "2024010222001", 1234, "SUCCEEDED", None),
        ("refund", "pay_a", "2024010222001", 234, "REFUNDED", "rfd_b"),
        ("refund", "pay_c", "2024010222002", 500, "REVERSED", None),
    ]


def test_bad_bills_are_value_errors() -> None:
    with pytest.raises(ValueError):
        t.parse_bill("#x\na,b,c\n1,2,3\n")
    header = ",".join(t.BILL_COLUMNS)
    with pytest.raises(ValueError):
        t.parse_bill(f"{header}\n1,pay_a,转账,s,,,,,,,,1.00,1.00,,,,,,,,,,,,\n")
