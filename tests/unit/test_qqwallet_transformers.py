"""QQ Wallet (qpay v2) transformers and signer against fixed vectors."""
from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timezone

import pytest

from channels.money import fen_to_yuan, yuan_to_fen
from channels.base import (ChannelError, Method, PayRequest, RefundStatus, TradeStatus)
from channels.http import HttpReply
from channels.qqwallet import transformers as tf

# The signing example published in the WeChat Pay v2 docs (qpay signs the same
# way): its MD5 and HMAC-SHA256 signatures are the documented ones.
DOC_PARAMS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000", "body": "test",
              "nonce_str": "ibuaiVcKdpRxkhJA"}
DOC_KEY = "192006250b4c09247ec02edce69f6a2d"
DOC_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
DOC_HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


def test_string_to_sign_sorts_drops_empty_and_sign_and_appends_key() -> None:
    s = tf.string_to_sign({"b": "2", "a": "1", "c": "", "sign": "X", "sign_type": "MD5"}, "K")
    assert s == "a=1&b=2&sign_type=MD5&key=K"


def test_md5_signature_matches_documented_vector() -> None:
    assert tf.sign(DOC_PARAMS, DOC_KEY) == DOC_MD5
    expected = hashlib.md5(f"{tf.string_to_sign(DOC_PARAMS, DOC_KEY)}".encode()).hexdigest().upper()
    assert expected == DOC_MD5


def test_hmac_sha256_signature_matches_documented_vector() -> None:
    assert tf.sign(DOC_PARAMS, DOC_KEY, tf.SIGN_HMAC_SHA256) == DOC_HMAC
    raw = "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
    mac = hmac.new(DOC_KEY.encode(), f"{raw}&key={DOC_KEY}".encode(), hashlib.sha256).hexdigest().upper()
    assert mac == DOC_HMAC


def test_verify_accepts_vector_and_rejects_tampering() -> None:
    assert tf.verify(dict(DOC_PARAMS, sign=DOC_MD5), DOC_KEY)
    assert tf.verify(dict(DOC_PARAMS, sign=DOC_MD5.lower()), DOC_KEY)
    assert not tf.verify(dict(DOC_PARAMS, sign=DOC_MD5, body="tset"), DOC_KEY)
    assert not tf.verify(dict(DOC_PARAMS, sign=DOC_MD5), "0" * 32)
    assert not tf.verify(dict(DOC_PARAMS, sign=DOC_MD5), DOC_KEY, tf.SIGN_HMAC_SHA256)
    assert not tf.verify(DOC_PARAMS, DOC_KEY)


def test_signed_adds_nonce_sign_type_and_drops_empty() -> None:
    out = tf.signed({"mch_id": "1", "device_info": None, "body": ""}, "K", tf.SIGN_HMAC_SHA256, "n")
    assert set(out) == {"mch_id", "nonce_str", "sign_type", "sign"}
    assert tf.verify(out, "K", tf.SIGN_HMAC_SHA256)
    assert "sign_type" not in tf.signed({"mch_id": "1"}, "K", tf.SIGN_MD5, "n")
    with pytest.raises(ValueError):
        tf.sign({"a": "1"}, "K", "SHA1")


def test_xml_round_trip_escapes() -> None:
    params = {"body": "a<b>&\"c\"", "total_fee": "1"}
    xml = tf.to_xml(params)
    assert xml.startswith(b"<xml><body>a&lt;b&gt;&amp;")
    assert tf.parse_xml(xml) == params
    assert tf.parse_xml(b"<xml><a><![CDATA[x]]></a></xml>") == {"a": "x"}


@pytest.mark.parametrize("body", [b"", b"<html/>", b"not xml", b"<xml><a></xml>",
                                  b'<!DOCTYPE x [<!ENTITY e "y">]><xml><a>&e;</a></xml>'])
def test_parse_xml_refuses_garbage_and_dtds(body: bytes) -> None:
    with pytest.raises(ValueError):
        tf.parse_xml(body)


def test_yuan_fen_conversion_edge_cases() -> None:
    assert [fen_to_yuan(v) for v in (0, 1, 10, 99, 100, 12345, 10**12)] == [
        "0.00", "0.01", "0.10", "0.99", "1.00", "123.45", "10000000000.00"]
    assert [yuan_to_fen(v) for v in ("0", "0.01", "0.1", "12", "12.3", "12.34", "10000000000.00")] == [
        0, 1, 10, 1200, 1230, 1234, 10**12]
    for bad in ("", "-1.00", "1.234", "1e2", " 1.00", "01.00", "1.", ".5", "1,00"):
        with pytest.raises(ValueError):
            yuan_to_fen(bad)
    for bad_fen in (-1, 1.5, True):
        with pytest.raises(ValueError):
            fen_to_yuan(bad_fen)  # type: ignore[arg-type]


def test_id_mapping_round_trips() -> None:
    pid = "pay_" + "a1" * 12
    assert tf.to_qpay_no(pid, strip_underscore=False) == pid
    stripped = tf.to_qpay_no(pid, strip_underscore=True)
    assert stripped == "pay" + "a1" * 12 and "_" not in stripped
    assert tf.from_qpay_no(stripped, strip_underscore=True) == pid
    rid = "rfd_" + "z9" * 12
    assert tf.from_qpay_no(tf.to_qpay_no(rid, True), True) == rid
    assert tf.to_qpay_no("ext_order", True) == "ext_order"        # not a paycore id: untouched
    assert tf.from_qpay_no("12345", True) == "12345"


def test_times_are_beijing_time() -> None:
    dt = datetime(2024, 1, 31, 16, 30, 5, tzinfo=timezone.utc)
    assert tf.qpay_time(dt) == "20240201003005"
    assert tf.parse_qpay_time("20240201003005") == dt
    assert tf.parse_qpay_time("garbage") is None and tf.parse_qpay_time(None) is None


def _pay_request(method: Method, **kw) -> PayRequest:
    return PayRequest(out_trade_no="pay_" + "0" * 24, amount=1234, method=method, subject="s", notify_url="http://n",
                      expire_at=datetime(2024, 1, 1, 0, 5, tzinfo=timezone.utc),
                      created_at=datetime(2024, 1, 1, tzinfo=timezone.utc), **kw)


def test_pay_params_per_method() -> None:
    bar = tf.pay_params(_pay_request(Method.BARCODE, auth_code="91" + "0" * 16), mch_id="m", appid="",
                        strip_underscore=False)
    assert bar["auth_code"] == "91" + "0" * 16 and bar["total_fee"] == "1234" and "trade_type" not in bar
    sonic = tf.pay_params(_pay_request(Method.SONIC, auth_code="91" + "0" * 16), mch_id="m", appid="",
                          strip_underscore=False)
    assert sonic == bar
    qr = tf.pay_params(_pay_request(Method.QR), mch_id="m", appid="", strip_underscore=True)
    assert qr["trade_type"] == "NATIVE" and qr["out_trade_no"] == "pay" + "0" * 24
    assert qr["time_start"] == "20240101080000" and qr["time_expire"] == "20240101080500"
    assert tf.pay_params(_pay_request(Method.JSAPI), mch_id="m", appid="", strip_underscore=False)[
        "trade_type"] == "JSAPI"
    with pytest.raises(ValueError):
        tf.pay_params(_pay_request(Method.H5), mch_id="m", appid="", strip_underscore=False)


@pytest.mark.parametrize("state,status", [
    ("SUCCESS", TradeStatus.SUCCEEDED), ("REFUND", TradeStatus.SUCCEEDED), ("NOTPAY", TradeStatus.PENDING),
    ("CLOSED", TradeStatus.CLOSED), ("REVOKED", TradeStatus.REVERSED), ("USERPAYING", TradeStatus.PROCESSING),
    ("PAYERROR", TradeStatus.FAILED)])
def test_trade_state_mapping(state: str, status: TradeStatus) -> None:
    res = tf.query_result({"result_code": "SUCCESS", "trade_state": state, "total_fee": "5",
                           "transaction_id": "T", "time_end": "20240101080000"})
    assert res.status is status and res.amount == 5 and res.channel_trade_no == "T"
    assert (res.paid_at is not None) == (status is TradeStatus.SUCCEEDED)


def test_unknown_trade_state_is_garbage() -> None:
    with pytest.raises(ChannelError) as e:
        tf.query_result({"result_code": "SUCCESS", "trade_state": "WAT"})
    assert e.value.kind == "garbage" and e.value.retriable


def test_micropay_answers() -> None:
    assert tf.micropay_result({"result_code": "SUCCESS", "total_fee": "1"}).status is TradeStatus.SUCCEEDED
    paying = tf.micropay_result({"result_code": "FAIL", "err_code": "USERPAYING"})
    assert paying.status is TradeStatus.PROCESSING
    declined = tf.micropay_result({"result_code": "FAIL", "err_code": "AUTHCODEEXPIRE", "err_code_des": "x"})
    assert declined.status is TradeStatus.FAILED and declined.failure_code == "AUTHCODEEXPIRE"
    for code in ("SYSTEMERROR", "BANKERROR"):
        with pytest.raises(ChannelError) as e:
            tf.micropay_result({"result_code": "FAIL", "err_code": code})
        assert e.value.retriable and e.value.kind == "system_error"


def test_unified_order_answers() -> None:
    qr = tf.unified_order_result({"result_code": "SUCCESS", "code_url": "https://q/1", "prepay_id": "P"}, Method.QR)
    assert qr.status is TradeStatus.PENDING and qr.qr_code == "https://q/1"
    js = tf.unified_order_result({"result_code": "SUCCESS", "prepay_id": "P"}, Method.JSAPI, pub_acc="acc")
    assert js.pay_params == {"tokenId": "P", "appId": "", "pubAcc": "acc", "pubAccHint": ""}
    with pytest.raises(ChannelError):
        tf.unified_order_result({"result_code": "SUCCESS"}, Method.QR)


def test_query_close_reverse_answers() -> None:
    assert tf.query_result({"result_code": "FAIL", "err_code": "ORDERNOTEXIST"}).status is TradeStatus.NOT_FOUND
    with pytest.raises(ChannelError):
        tf.query_result({"result_code": "FAIL", "err_code": "SYSTEMERROR"})
    assert tf.close_result({"result_code": "SUCCESS"}).status is TradeStatus.CLOSED
    assert tf.close_result({"result_code": "FAIL", "err_code": "ORDERPAID"}).status is TradeStatus.SUCCEEDED
    assert tf.reverse_result({"result_code": "SUCCESS", "recall": "N"}).status is TradeStatus.REVERSED
    assert tf.reverse_result({"result_code": "SUCCESS", "recall": "Y"}).retry
    assert tf.reverse_result({"result_code": "FAIL", "err_code": "SYSTEMERROR"}).retry
    with pytest.raises(ChannelError) as e:
        tf.reverse_result({"result_code": "FAIL", "err_code": "TRADE_ERROR"})
    assert not e.value.retriable


def test_refund_answers() -> None:
    accepted = tf.refund_result({"result_code": "SUCCESS", "refund_id": "R"})
    assert accepted.status is RefundStatus.PROCESSING and accepted.channel_refund_no == "R"
    declined = tf.refund_result({"result_code": "FAIL", "err_code": "NOTENOUGH"})
    assert declined.status is RefundStatus.FAILED and declined.failure_code == "NOTENOUGH"
    d = {"result_code": "SUCCESS", "refund_count": "2", "out_refund_no_0": "a", "refund_status_0": "FAIL",
         "out_refund_no_1": "b", "refund_status_1": "SUCCESS", "refund_id_1": "RB"}
    got = tf.refund_query_result(d, "b")
    assert got.status is RefundStatus.SUCCEEDED and got.channel_refund_no == "RB"
    assert tf.refund_query_result(d, "a").status is RefundStatus.FAILED
    assert tf.refund_query_result(dict(d, refund_status_1="NOTSURE"), "b").status is RefundStatus.PROCESSING
    assert tf.refund_query_result(d, "zzz").failure_code == "REFUNDNOTEXIST"


def test_payment_notification_maps_back_ids() -> None:
    d = {"mch_id": "m", "trade_state": "SUCCESS", "total_fee": "100", "out_trade_no": "pay" + "b" * 24,
         "transaction_id": "T"}
    note = tf.payment_notification(d, strip_underscore=True)
    assert note.out_trade_no == "pay_" + "b" * 24 and note.amount == 100 and note.merchant_ref == "m"
    with pytest.raises(ValueError):
        tf.payment_notification({"mch_id": "m"}, strip_underscore=False)


def test_ack_format() -> None:
    assert tf.ack_xml(True) == b"<xml><return_code>SUCCESS</return_code></xml>"
    assert tf.parse_xml(tf.ack_xml(False, "bad"))["return_code"] == "FAIL"


def test_statement_round_trip() -> None:
    row = dict.fromkeys(tf.STATEMENT_COLUMNS, "")
    pay = dict(row, **{"QQ钱包订单号": "T1", "商户订单号": "pay" + "c" * 24, "交易状态": "SUCCESS", "总金额": "12.34"})
    rfd = dict(pay, **{"交易状态": "REFUND", "商户退款单号": "rfd" + "d" * 24, "退款金额": "0.34"})
    rev = dict(pay, **{"QQ钱包订单号": "T2", "交易状态": "REVOKED", "总金额": "1.00"})
    text = tf.statement_csv(tf.STATEMENT_COLUMNS, [list(pay.values()), list(rfd.values()), list(rev.values())],
                            ["3", "13.34", "0.34", "0.00", "0.00"])
    assert "`T1" in text
    lines = tf.parse_statement(text, strip_underscore=True)
    assert [(l.kind, l.out_trade_no, l.amount, l.status, l.out_refund_no) for l in lines] == [
        ("payment", "pay_" + "c" * 24, 1234, "SUCCEEDED", None),
        ("refund", "pay_" + "c" * 24, 34, "REFUNDED", "rfd_" + "d" * 24),
        ("payment", "pay_" + "c" * 24, 100, "REVERSED", None),
    ]
    with pytest.raises(ValueError):
        tf.parse_statement("a,b\n", strip_underscore=False)


def test_statement_params_use_yyyymmdd() -> None:
    assert tf.statement_params(date(2024, 3, 9), mch_id="m", appid="")["bill_date"] == "20240309"


class _StubHttp:
    """Answers every request with one fixed reply (no network)."""

    def __init__(self, reply: HttpReply) -> None:
        self.reply = reply

    async def request(self, method: str, url: str, **kw) -> HttpReply:
        return self.reply


async def test_adapter_rejects_answer_with_bad_signature() -> None:
    from channels.qqwallet.adapter import QqWalletAdapter
    from paycore.config import channel_settings
    settings = channel_settings("qqwallet", {"base_url": "http://sim", "mch_id": "m", "secret": "K" * 32})
    answer = tf.signed({"return_code": "SUCCESS", "result_code": "SUCCESS", "trade_state": "SUCCESS",
                        "total_fee": "1"}, "K" * 32, tf.SIGN_MD5, "n")
    tampered = tf.to_xml(dict(answer, total_fee="100"))
    adapter = QqWalletAdapter(settings, _StubHttp(HttpReply(200, {}, tampered)))  # type: ignore[arg-type]
    req = _pay_request(Method.BARCODE, auth_code="910000000000000001")
    with pytest.raises(ChannelError) as e:
        await adapter.pay(req)
    assert e.value.kind == "bad_signature" and e.value.retriable
    adapter.http = _StubHttp(HttpReply(200, {}, tf.to_xml(answer)))  # type: ignore[assignment]
    assert (await adapter.pay(req)).status is TradeStatus.SUCCEEDED
