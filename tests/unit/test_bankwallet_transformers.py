"""bankwallet transformers and HMAC signer against fixed vectors."""
from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timedelta, timezone

import pytest

from channels.bankwallet import transformers as tf
from channels.base import ChannelError, Method, PayRequest, RefundStatus, TradeStatus

KEY = b"0123456789abcdef0123456789abcdef"
TS, NONCE = "1700000000", "5f2b8c1e9d3a4b6c7d8e9f0a1b2c3d4e"
BODY = b'{"merchant_id":"BW000000001","amount":100}'
#: hex HMAC-SHA256(KEY, TS + "\n" + NONCE + "\n" + BODY), computed once with the stdlib
VECTOR = "7b6467c90bb5fd82a7cc45f62427e2291de8ff51dbbaef276ca91ad323643780"


def test_string_to_sign_is_timestamp_nonce_body() -> None:
    assert tf.string_to_sign(TS, NONCE, BODY) == b"1700000000\n" + NONCE.encode() + b"\n" + BODY


def test_signature_matches_independent_hmac_and_vector() -> None:
    independent = hmac.new(KEY, f"{TS}\n{NONCE}\n".encode() + BODY, hashlib.sha256).hexdigest()
    assert tf.sign(KEY, TS, NONCE, BODY) == independent == VECTOR


def test_verify_vector_and_reject_tampering() -> None:
    assert tf.verify(KEY, TS, NONCE, BODY, VECTOR)
    assert tf.verify(KEY, TS, NONCE, BODY, VECTOR.upper())
    assert not tf.verify(KEY, TS, NONCE, BODY.replace(b"100", b"101"), VECTOR)
    assert not tf.verify(KEY, "1700000001", NONCE, BODY, VECTOR)
    assert not tf.verify(KEY, TS, "0" * 32, BODY, VECTOR)
    assert not tf.verify(b"x" * 32, TS, NONCE, BODY, VECTOR)


def test_signed_headers_verify_and_missing_headers_fail() -> None:
    h = tf.signed_headers(KEY, TS, NONCE, BODY, "application/json")
    assert h[tf.SIG_HEADER] == VECTOR and h[tf.TS_HEADER] == TS and h[tf.NONCE_HEADER] == NONCE
    assert tf.verify_headers(KEY, h, BODY)
    for missing in (tf.SIG_HEADER, tf.TS_HEADER, tf.NONCE_HEADER):
        assert not tf.verify_headers(KEY, {k: v for k, v in h.items() if k != missing}, BODY)


def test_freshness_window() -> None:
    assert tf.fresh("1000", 1000.0) and tf.fresh("1000", 1300.0) and tf.fresh("1300", 1000.0)
    assert not tf.fresh("1000", 1301.0) and not tf.fresh("1301", 1000.0)
    assert not tf.fresh(None, 1000.0) and not tf.fresh("-5", 1000.0) and not tf.fresh("1e3", 1000.0)
    assert tf.fresh("1000", 1050.0, window=60) and not tf.fresh("1000", 1061.0, window=60)


def test_times_round_trip_in_utc() -> None:
    dt = datetime(2024, 2, 1, 8, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    assert tf.rfc3339(dt) == "2024-02-01T00:00:05Z"
    assert tf.parse_time("2024-02-01T00:00:05Z") == dt
    assert tf.parse_time("2024-02-01T00:00:05") == dt
    assert tf.encode({"t": dt}) == b'{"t":"2024-02-01T08:00:05+08:00"}'
    utc = dt.astimezone(timezone.utc).replace(microsecond=7)
    assert tf.encode({"t": utc}) == b'{"t":"2024-02-01T00:00:05Z"}'
    assert tf.parse_time(tf.encode(dt).decode().strip('"')) == dt
    assert tf.parse_time("yesterday") is None and tf.parse_time(None) is None


def _req(method: Method, **kw) -> PayRequest:
    return PayRequest(out_trade_no="pay_" + "1" * 24, amount=1234, method=method, subject="s", notify_url="http://n",
                      expire_at=datetime(2024, 1, 1, tzinfo=timezone.utc), **kw)


def test_pay_payload_per_method() -> None:
    bar = tf.pay_payload(_req(Method.BARCODE, auth_code="88" + "0" * 16, store_id="S1"), "M")
    assert bar == {"merchant_id": "M", "out_trade_no": "pay_" + "1" * 24, "amount": 1234, "currency": "CNY",
                   "method": "barcode", "subject": "s", "notify_url": "http://n",
                   "expire_at": datetime(2024, 1, 1, tzinfo=timezone.utc), "auth_code": "88" + "0" * 16,
                   "store_id": "S1"}
    assert tf.pay_payload(_req(Method.SONIC, auth_code="88" + "0" * 16, store_id="S1"), "M") == bar
    assert tf.pay_payload(_req(Method.WALLET, payer={"user_id": "u1"}), "M")["user_id"] == "u1"
    qr = tf.pay_payload(_req(Method.QR), "M")
    assert "auth_code" not in qr and "user_id" not in qr and qr["method"] == "qr"
    with pytest.raises(ValueError):
        tf.pay_payload(_req(Method.JSAPI), "M")


@pytest.mark.parametrize("word,status", [
    ("PENDING", TradeStatus.PENDING), ("PAYING", TradeStatus.PROCESSING), ("SUCCESS", TradeStatus.SUCCEEDED),
    ("REFUNDED", TradeStatus.SUCCEEDED), ("FAILED", TradeStatus.FAILED), ("CLOSED", TradeStatus.CLOSED),
    ("REVERSED", TradeStatus.REVERSED)])
def test_payment_status_mapping(word: str, status: TradeStatus) -> None:
    res = tf.payment_result({"status": word, "trade_no": "T", "amount": 7, "paid_at": "2024-01-01T00:00:00Z"})
    assert res.status is status and res.amount == 7 and res.channel_trade_no == "T"
    assert (res.paid_at is not None) == (status is TradeStatus.SUCCEEDED)


def test_declines_and_unknown_statuses() -> None:
    res = tf.payment_result({"status": "FAILED", "error_code": "INSUFFICIENT_BALANCE", "error_message": "m"})
    assert res.failure_code == "INSUFFICIENT_BALANCE" and res.failure_message == "m"
    assert tf.payment_result({"status": "FAILED"}).failure_code == "FAILED"
    assert tf.payment_result({"status": "SUCCESS", "amount": True}).amount is None
    with pytest.raises(ChannelError) as e:
        tf.payment_result({"status": "MAYBE"})
    assert e.value.kind == "garbage" and e.value.retriable


def test_refund_status_mapping() -> None:
    assert tf.refund_result({"status": "SUCCESS", "refund_no": "R"}).channel_refund_no == "R"
    assert tf.refund_result({"status": "PROCESSING"}).status is RefundStatus.PROCESSING
    failed = tf.refund_result({"status": "FAILED", "error_code": "REFUND_NOT_ALLOWED"})
    assert failed.status is RefundStatus.FAILED and failed.failure_code == "REFUND_NOT_ALLOWED"
    with pytest.raises(ChannelError):
        tf.refund_result({"status": "?"})


def test_notifications_parse_and_refuse_malformed() -> None:
    payment = {"merchant_id": "M", "out_trade_no": "pay_a", "amount": 100, "status": "SUCCESS", "trade_no": "T"}
    note = tf.notification({"event": "payment", "notify_id": "N", "payment": payment})
    assert (note.kind, note.out_trade_no, note.amount, note.merchant_ref, note.notification_id) == (
        "payment", "pay_a", 100, "M", "N")
    refund = {"out_refund_no": "rfd_a", "amount": 40, "status": "SUCCESS", "refund_no": "R"}
    rnote = tf.notification({"event": "refund", "payment": dict(payment, status="REFUNDED"), "refund": refund})
    assert (rnote.out_refund_no, rnote.amount) == ("rfd_a", 40)
    assert rnote.refund is not None and rnote.refund.status is RefundStatus.SUCCEEDED
    for bad in ([], {"event": "x", "payment": payment}, {"event": "payment"},
                {"event": "refund", "payment": payment}):
        with pytest.raises(ValueError):
            tf.notification(bad)


def test_statement_round_trip() -> None:
    text = tf.statement_csv([
        ("payment", "t", "T1", "pay_a", "", "", 500, "SUCCESS"),
        ("payment", "t", "T2", "pay_b", "", "", 700, "REVERSED"),
        ("refund", "t", "T1", "pay_a", "R1", "rfd_a", 200, "SUCCESS"),
    ])
    lines = tf.parse_statement(text)
    assert [(l.kind, l.out_trade_no, l.amount, l.status, l.out_refund_no) for l in lines] == [
        ("payment", "pay_a", 500, "SUCCEEDED", None), ("payment", "pay_b", 700, "REVERSED", None),
        ("refund", "pay_a", 200, "REFUNDED", "rfd_a")]
    assert tf.parse_statement(tf.statement_csv([])) == []
    with pytest.raises(ValueError):
        tf.parse_statement("a,b\n1,2\n")
    with pytest.raises(ValueError):
        tf.parse_statement(tf.statement_csv([("payment", "t", "T", "pay_a", "", "", "1.00", "SUCCESS")]))


def test_statement_payload() -> None:
    assert tf.statement_payload(date(2024, 3, 9), "M") == {"merchant_id": "M", "date": "2024-03-09"}
