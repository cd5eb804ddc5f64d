"""e-CNY acquirer-profile transformers and RSA signer against fixed vectors."""
from __future__ import annotations

import base64
from datetime import date, datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.base import ChannelError, Method, PayRequest, RefundRequest, RefundStatus, TradeRef, TradeStatus
from channels.ecny import transformers as tf

# A test-only RSA-2048 key (generated once with cryptography for these vectors;
# it signs nothing outside this file).
TEST_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCn7vK/4hxlGQZf
SvqEKP/PVB8sBRmJMl58r3pMLN3uWeVy5CVauxpjUwRdj35cWMwsXKW4FI9joDEO
JbCJFil/4Iw8EVgNvFZ/TpcIGHLGABet+BRCbDoe4O3bbNDEsBDm/H11hxbuDQQA
6jLOjBsKGCkbbU/Qkw/VMufkvTT05sR/yx6pu8qDZMqZilCtZd7/CMdaHN+Lp2/N
U6frmYHFhfbnPajBV4YBonJEu830rlPvY/QctxWYMVDwMSE2w6iepUqy9AS94MpS
ELzbXh+n162CeQN6sZulU28t3lDaPG7a2k1b/jacDjbTpwlBcoD1dZKH5XTLqDRT
HD6HnyMlAgMBAAECggEAHfr2s3L2hsX08UY9eyKmqKjn97/hUzD+1VuuhbLs3ASI
hf5c/NmyWFEV0m4vrOTdbn4Lx9VD1BFhMJlh7tdaCU5ZOtAN3EXnW0r4g6V5uAeE
Mra7RzBzH9ggHrBKhRK5scMZ0sWPPmhsco1dDKrOmPq/O/pD6YSXqwQvihKNRbsy
8rQKj4ibYseV1ZPCwguPXObvR5mxAw/boUEbu2y0tvm94CJnzXVy6xJ0wKlUkjde
V4jMLLrF6hKSx/2PQmIgwuzgWnBc9AkOmYfiXkBXz4Bqf3DOehs77fc3edFuosQc
bWIR/gfdTjJSWnACMecVOVmGolLX2ZUtTJuaYH8zAQKBgQDZptafihecG86UWHbX
011EMvywotMnPN+2iEilp7W585RDeZg6vqM/syflt6MTBoyo30ZVq7YA3CM1WvAV
kZ/e9K3RshOs0t0zTuscEsVGZiku6abSpd61gZ71/80nxDvX/b9wInwFqBrG7RoM
l+JzZ4xOJdKuewMxYwRQfHwPtQKBgQDFhZG+rGTW5Y1yRLeROwtJesbxYFul/9Ed
+4JHZTnPndCvzINiosDelRQQukyw4Aq5s/l6nJzmETPl9r7UggNsbj3EowmqtFtQ
8EaJzmbULwjcP3oaL+VosfIk9jViaHmPveSG7SY4ha6iHwmw6iAh2Y6YaCriDMsF
LKN2DK2LsQKBgEigyKuSHBDGoqeT4YxhhpTUYsfafZVxVcGGNp+4mAaGBmqBr8+i
f70o3l5kafFWVSeg4cqCswgUbVdHkifQYUW35iy8PJ6F+rQ9WG0Uwmmce4+g/j76
hJeSumWiR2ZGsCWCEhisGTCWCOFqiy+6myEhY4tMScJZYBZh0TW+ZHOlAoGAGrTF
kO9ELx4YctPBshw2mXfFQEuT+KzO/GvOIJMaLu0akzpmpUZ2J2ImtWBLEDsqmBMy
bxaPzDeVOcmT4a22gsmhBl4452C9XAMwtl823geB/i2C99lz/iTZJZA4hZa0oO++
31NfMJM6mmbx636sW4dL1WV4Ltol9QwlCcgLCvECgYEArybYBRXg0td5xtcjvS7+
cLQalNSpibr9GLNbZeahbS59O/hdes2/stT/h/SmuglTBGjPs3pXCulRmec6X+rB
nSHF6bevyiAbySpGMNlYpUeDOZU3w0IvJ3x80w22+JibEBwaAgkKGYJfsAfEvQ+H
/CmqhLiPN3tFIqX9xbXkwlI=
-----END PRIVATE KEY-----
"""
KEY = serialization.load_pem_private_key(TEST_KEY_PEM, password=None)
assert isinstance(KEY, rsa.RSAPrivateKey)
PUB = KEY.public_key()
BODY = (b'{"req_time":"20231115063320","version":"1.0","req_data":{"merchant_no":"EC0000000000001",'
        b'"out_trade_no":"pay_abc","total_amount":"12.34"}}')
ARGS = ("ecnyacq01", "5E4A1C", "1700000000", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
#: base64 SHA256withRSA (PKCS#1 v1.5 is deterministic) of message(*ARGS, BODY) with TEST_KEY_PEM
VECTOR = ("hBO49ulK8Tn+7USE7VvJWjTC7PNL6cysrJzZmgnTAQr2pacmJvYPp79lzshr2deP2GtNF1sWXRrBWt+3zDG+yyPqyYO5lgTDfmAVaOuI"
          "QM2q1usZMzd4Ngox5m6UEZ5mXX8yq3VR1Or5pCNq4Mrf4osq+vg96137s/lQWlESP6452XkrYeupfDJWN8u0I3V/hP4Zv0wGhEEstvUe"
          "WlQq6tJ+zK87oZAKBiqz3PSMS3Ru037RukJ/TRCHSaOR2K8eLBVJlSwT3o896CkqzuA5cNiOguyrwJoe503kUFrAPxNBmWG47uq9diZz"
          "0P+lAApPn8YMpB6W6Zt+MS7FNjyMbQ==")


def test_message_is_five_lines_each_newline_terminated() -> None:
    assert tf.message(*ARGS, b"{}") == b"ecnyacq01\n5E4A1C\n1700000000\n0f1e2d3c4b5a69788796a5b4c3d2e1f0\n{}\n"


def test_rsa_signature_matches_independent_computation_and_vector() -> None:
    data = tf.message(*ARGS, BODY)
    independent = base64.b64encode(KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert tf.rsa_sign(KEY, data) == independent == VECTOR


def test_verify_vector_and_reject_tampering() -> None:
    data = tf.message(*ARGS, BODY)
    assert tf.rsa_verify(PUB, data, VECTOR)
    assert not tf.rsa_verify(PUB, data.replace(b"12.34", b"12.35"), VECTOR)
    assert not tf.rsa_verify(PUB, tf.message("other", *ARGS[1:], BODY), VECTOR)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not tf.rsa_verify(other.public_key(), data, VECTOR)
    assert not tf.rsa_verify(PUB, data, "not base64!")
    assert not tf.rsa_verify(PUB, data, "")


def test_authorization_header_round_trip() -> None:
    header = tf.authorization(*ARGS, VECTOR)
    assert header.startswith('ECNY-SHA256withRSA appid="ecnyacq01",serial_no="5E4A1C",timestamp="1700000000"')
    params = tf.parse_authorization(header)
    assert params is not None and params["signature"] == VECTOR and params["nonce_str"] == ARGS[3]
    assert tf.verify_authorization(PUB, params, BODY)
    assert not tf.verify_authorization(PUB, dict(params, timestamp="1700000001"), BODY)
    for bad in (None, "", "Bearer x", 'ECNY-SHA256withRSA appid="a",serial_no="b"'):
        assert tf.parse_authorization(bad) is None


def test_answer_headers_verify_and_missing_header_fails() -> None:
    headers = tf.answer_headers(KEY, *ARGS, BODY)
    assert headers["Ecny-Signature"] == VECTOR and tf.verify_answer(PUB, headers, BODY)
    assert not tf.verify_answer(PUB, headers, BODY + b" ")
    assert not tf.verify_answer(PUB, {k: v for k, v in headers.items() if k != "Ecny-Nonce"}, BODY)


def test_freshness_and_times() -> None:
    assert tf.fresh("1000", 1300.0) and not tf.fresh("1000", 1301.0) and not tf.fresh("x", 1.0)
    dt = datetime(2023, 11, 14, 22, 33, 20, tzinfo=timezone.utc)
    assert tf.ecny_time(dt) == "20231115063320" and tf.parse_ecny_time("20231115063320") == dt
    assert tf.parse_ecny_time("2023") is None and tf.parse_ecny_time(None) is None


def _req(method: Method, **kw) -> PayRequest:
    return PayRequest(out_trade_no="pay_" + "e" * 24, amount=1234, method=method, subject="s",
                      notify_url="http://n", expire_at=datetime(2023, 11, 14, 22, 38, 20, tzinfo=timezone.utc), **kw)


def test_pay_data_uses_yuan_and_the_right_verb() -> None:
    verb, data = tf.pay_data(_req(Method.BARCODE, auth_code="01" + "2" * 17, terminal_id="T1"), "EC1")
    assert verb == "micropay" and data == {
        "merchant_no": "EC1", "out_trade_no": "pay_" + "e" * 24, "total_amount": "12.34", "subject": "s",
        "notify_url": "http://n", "expire_time": "20231115063820", "term_no": "T1", "auth_code": "01" + "2" * 17}
    assert tf.pay_data(_req(Method.SONIC, auth_code="01" + "2" * 17, terminal_id="T1"), "EC1") == (verb, data)
    verb, data = tf.pay_data(_req(Method.QR), "EC1")
    assert verb == "preorder" and "auth_code" not in data
    with pytest.raises(ValueError):
        tf.pay_data(_req(Method.JSAPI), "EC1")
    env = tf.envelope(data, datetime(2023, 11, 14, 22, 33, 20, tzinfo=timezone.utc))
    assert env == {"req_time": "20231115063320", "version": "1.0", "req_data": data}


def test_refund_and_trade_data() -> None:
    rr = RefundRequest(out_refund_no="rfd_1", out_trade_no="pay_1", channel_trade_no="EC9", total_amount=1000,
                       refund_amount=5, reason=None, notify_url="http://r")
    assert tf.refund_data(rr, "M") == {"merchant_no": "M", "out_trade_no": "pay_1", "out_refund_no": "rfd_1",
                                       "refund_amount": "0.05", "notify_url": "http://r", "trade_no": "EC9"}
    assert tf.trade_data(TradeRef("pay_1", 1, Method.QR), "M") == {"merchant_no": "M", "out_trade_no": "pay_1"}
    assert tf.bill_data(date(2024, 3, 9), "M")["bill_date"] == "20240309"


@pytest.mark.parametrize("state,status", [
    ("WAIT_PAY", TradeStatus.PENDING), ("PAYING", TradeStatus.PROCESSING), ("SUCCESS", TradeStatus.SUCCEEDED),
    ("REFUND", TradeStatus.SUCCEEDED), ("FAIL", TradeStatus.FAILED), ("CLOSED", TradeStatus.CLOSED),
    ("REVOKED", TradeStatus.REVERSED)])
def test_trade_state_mapping(state: str, status: TradeStatus) -> None:
    res = tf.trade_result({"code": "000000", "resp_data": {"trade_state": state, "total_amount": "0.07",
                                                           "trade_no": "EC1", "pay_time": "20231115063320"}},
                          "query")
    assert res.status is status and res.amount == 7 and res.channel_trade_no == "EC1"
    assert (res.paid_at is not None) == (status is TradeStatus.SUCCEEDED)


def test_answer_codes() -> None:
    assert tf.pay_result({"code": "000000", "resp_data": {"trade_state": "SUCCESS"}}).status is TradeStatus.SUCCEEDED
    declined = tf.pay_result({"code": "200001", "msg": "钱包余额不足", "resp_data": {"trade_no": "EC1"}})
    assert declined.status is TradeStatus.FAILED and declined.failure_code == "200001"
    with pytest.raises(ChannelError) as e:
        tf.pay_result({"code": "000001"})
    assert e.value.retriable and e.value.kind == "system_error"
    with pytest.raises(ChannelError) as e:
        tf.pay_result({"code": "000002"})
    assert not e.value.retriable
    with pytest.raises(ChannelError) as e:
        tf.pay_result({"code": "000000", "resp_data": {"trade_state": "??"}})
    assert e.value.kind == "garbage"
    assert tf.trade_result({"code": "100001"}, "query").status is TradeStatus.NOT_FOUND
    assert tf.trade_result({"code": "000001"}, "reverse").retry
    with pytest.raises(ChannelError):
        tf.trade_result({"code": "000001"}, "query")
    with pytest.raises(ChannelError):
        tf.trade_result({"code": "100003"}, "reverse")


def test_refund_codes() -> None:
    ok = tf.refund_result({"code": "000000", "resp_data": {"refund_state": "SUCCESS", "refund_no": "R"}})
    assert ok.status is RefundStatus.SUCCEEDED and ok.channel_refund_no == "R"
    assert tf.refund_result({"code": "000000", "resp_data": {"refund_state": "PROCESSING"}}).status is (
        RefundStatus.PROCESSING)
    refused = tf.refund_result({"code": "300001", "msg": "x"})
    assert refused.status is RefundStatus.FAILED and refused.failure_code == "300001"
    with pytest.raises(ChannelError):
        tf.refund_result({"code": "000001"})


def test_notifications() -> None:
    trade = {"notify_id": "E1", "notify_type": "trade", "merchant_no": "M", "out_trade_no": "pay_1",
             "total_amount": "1.00", "trade_state": "SUCCESS", "trade_no": "EC1"}
    note = tf.notification(trade)
    assert (note.kind, note.out_trade_no, note.amount, note.merchant_ref, note.notification_id) == (
        "payment", "pay_1", 100, "M", "E1")
    refund = dict(trade, notify_type="refund", trade_state="REFUND", out_refund_no="rfd_1", refund_amount="0.40",
                  refund_state="SUCCESS", refund_no="R1")
    rnote = tf.notification(refund)
    assert (rnote.kind, rnote.out_refund_no, rnote.amount) == ("refund", "rfd_1", 40)
    assert rnote.refund is not None and rnote.refund.status is RefundStatus.SUCCEEDED
    for bad in ([], {}, dict(trade, notify_type="x"), dict(refund, refund_state="?")):
        with pytest.raises(ValueError):
            tf.notification(bad)


def test_bill_round_trip_and_totals_checked() -> None:
    content = tf.bill_content([
        ("PAY", "20231115063320", "EC1", "pay_1", "", "", 1234, "SUCCESS"),
        ("PAY", "20231115063320", "EC2", "pay_2", "", "", 100, "REVOKED"),
        ("REFUND", "20231115063320", "EC1", "pay_1", "ECR1", "rfd_1", 34, "SUCCESS"),
    ])
    assert content.endswith("TOTAL|3|13.34|0.34\n")
    lines = tf.parse_bill(content)
    assert [(l.kind, l.out_trade_no, l.amount, l.status, l.out_refund_no) for l in lines] == [
        ("payment", "pay_1", 1234, "SUCCEEDED", None), ("payment", "pay_2", 100, "REVERSED", None),
        ("refund", "pay_1", 34, "REFUNDED", "rfd_1")]
    assert tf.parse_bill(tf.bill_content([])) == []
    for bad in ("", content.replace("TOTAL|3", "TOTAL|2"), content.replace("13.34", "13.35"),
                content.replace("PAY|", "XYZ|", 1)):
        with pytest.raises(ValueError):
            tf.parse_bill(bad)
