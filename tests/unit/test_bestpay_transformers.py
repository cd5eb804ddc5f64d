"""Bestpay transformers: fixed-order MD5 macs, id mapping, answers, notifications, statement."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

import orjson
import pytest

from channels.base import Method, PayRequest, RefundRequest, RefundStatus, TradeRef, TradeStatus
from channels.bestpay import transformers as tf

KEY = "K3y0000000000000000000000000000a"      # a test vector, not a real merchant key
MERCHANT = "043101180050000"
NOW = datetime(2024, 1, 1, 0, 0, tzinfo=timezone.utc)    # 08:00 in China
PAY_ID = "pay_000000000000000000000001"
WIRE_ID = "payX000000000000000000000001"
EXPECTED_PLACE_ORDER_MAC = "3DCAB712BB40B8A6862FB9C72909BD0E"


def md5_upper(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest().upper()


def pay_request(amount: int = 1234) -> PayRequest:
    return PayRequest(PAY_ID, amount, Method.BARCODE, "coffee", "http://n/notify", NOW + timedelta(minutes=5),
                      auth_code="511234567890123456", created_at=NOW)


def test_place_order_mac_is_fixed_order_upper_md5() -> None:
    form = tf.place_order_form(pay_request(), MERCHANT, KEY, NOW, "0001")
    source = (f"MERCHANTID={MERCHANT}&ORDERNO={WIRE_ID}&ORDERREQNO={WIRE_ID}&ORDERDATE=20240101080000"
              f"&BARCODE=511234567890123456&ORDERAMT=1234&KEY={KEY}")
    assert form["mac"] == md5_upper(source) == EXPECTED_PLACE_ORDER_MAC
    assert form["channel"] == "05" and form["busiType"] == "0000001"
    assert form["orderAmt"] == form["productAmt"] == "1234" and form["storeId"] == "0001"
    assert form["backUrl"] == "http://n/notify" and "subMerchantId" not in form


def test_query_refund_and_reverse_macs() -> None:
    q = tf.query_form(TradeRef(PAY_ID, 1234, Method.BARCODE, created_at=NOW), MERCHANT, KEY)
    assert q["mac"] == md5_upper(f"MERCHANTID={MERCHANT}&ORDERNO={WIRE_ID}&ORDERREQNO={WIRE_ID}"
                                 f"&ORDERDATE=20240101080000&KEY={KEY}")
    r = tf.refund_form(RefundRequest("rfd_000000000000000000000009", PAY_ID, None, 1234, 300, None, "http://n/r"),
                       MERCHANT, "pwd1", KEY, NOW)
    assert r["mac"] == md5_upper(f"MERCHANTID={MERCHANT}&MERCHANTPWD=pwd1&OLDORDERNO={WIRE_ID}"
                                 f"&OLDORDERREQNO={WIRE_ID}&REFUNDREQNO=rfdX000000000000000000000009"
                                 f"&REFUNDREQDATE=20240101&TRANSAMT=300&LEDGERDETAIL=&KEY={KEY}")
    v = tf.reverse_form(TradeRef(PAY_ID, 1234, Method.BARCODE), MERCHANT, "pwd1", KEY, NOW)
    assert v["refundReqNo"] == "revX000000000000000000000001"
    assert v["mac"] == md5_upper(f"MERCHANTID={MERCHANT}&MERCHANTPWD=pwd1&OLDORDERNO={WIRE_ID}"
                                 f"&OLDORDERREQNO={WIRE_ID}&REFUNDREQNO=revX000000000000000000000001"
                                 f"&REFUNDREQDATE=20240101&TRANSAMT=1234&KEY={KEY}")


def test_mac_check_accepts_lower_case_and_rejects_tampering() -> None:
    values = {"MERCHANTID": MERCHANT, "FILEDATE": "20240101"}
    good = tf.mac(tf.STATEMENT_MAC, values, KEY)
    assert tf.mac_ok(tf.STATEMENT_MAC, values, KEY, good.lower())
    assert not tf.mac_ok(tf.STATEMENT_MAC, dict(values, FILEDATE="20240102"), KEY, good)
    assert not tf.mac_ok(tf.STATEMENT_MAC, values, "other", good)
    assert not tf.mac_ok(tf.STATEMENT_MAC, values, KEY, None)


def test_ids_map_to_even_alphanumeric_and_back() -> None:
    for pid in (PAY_ID, "rfd_zzzzzzzzzzzzzzzzzzzzzzzz", "pay_" + "0123456789abcdefghijklmn"):
        wire = tf.to_order_no(pid)
        assert wire.isalnum() and len(wire) % 2 == 0 and len(wire) <= 30
        assert tf.from_order_no(wire) == pid
    for bad in ("PAY_x", "pay-x", "pay_ABC", "pay_" + "a" * 27):
        with pytest.raises(ValueError):
            tf.to_order_no(bad)
    with pytest.raises(ValueError):
        tf.from_order_no("payx000")


@pytest.mark.parametrize(("value", "fen"), [("1", 1), ("100", 100), (250, 250), ("", None), (None, None),
                                            ("999999999999", 999999999999)])
def test_amounts_are_fen(value, fen) -> None:
    assert tf.wire_to_fen(value) == fen


@pytest.mark.parametrize("bad", ["1.00", "-5", -5, "+5", "1e2", True, " 5"])
def test_amount_garbage_is_rejected(bad) -> None:
    with pytest.raises(ValueError):
        tf.wire_to_fen(bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, False])
def test_non_positive_amounts_are_not_sent(bad) -> None:
    with pytest.raises(ValueError):
        tf.fen_to_wire(bad)


def test_dates_are_china_time() -> None:
    late = datetime(2024, 1, 1, 17, 0, tzinfo=timezone.utc)
    assert tf.order_date(late) == "20240102010000"
    assert tf.day_text(late) == "20240102" and tf.day_text(date(2024, 5, 6)) == "20240506"


def _answer(result: dict | None, success: bool = True, code: str | None = None) -> tf.Answer:
    return tf.parse_answer(orjson.dumps({"success": success, "result": result, "errorCode": code, "errorMsg": "m"}))


@pytest.mark.parametrize(("ts", "expected"), [("A", TradeStatus.PROCESSING), ("B", TradeStatus.SUCCEEDED),
                                              ("C", TradeStatus.FAILED), ("D", TradeStatus.REVERSED)])
def test_trans_status_mapping(ts: str, expected: TradeStatus) -> None:
    answer = _answer({"transStatus": ts, "transAmt": "10", "ourTransNo": "BP1"})
    res = tf.trade_result(answer, tf.BestpayCodes.from_extra({}))
    assert res.status is expected and res.amount == 10 and res.channel_trade_no == "BP1"


def test_error_answers_map_to_declines_and_not_found() -> None:
    codes = tf.BestpayCodes.from_extra({})
    declined = tf.trade_result(_answer(None, False, tf.ERR_DECLINED), codes)
    assert declined.status is TradeStatus.FAILED and declined.failure_code == tf.ERR_DECLINED
    assert tf.trade_result(_answer(None, False, tf.ERR_NOT_FOUND), codes).status is TradeStatus.NOT_FOUND
    with pytest.raises(ValueError):
        tf.trade_result(_answer({"transStatus": "Z"}), codes)
    assert tf.refund_result(_answer({"transAmt": "1"})).status is RefundStatus.SUCCEEDED
    refused = tf.refund_result(_answer(None, False, tf.ERR_REFUND_REFUSED))
    assert refused.status is RefundStatus.FAILED and refused.failure_code == tf.ERR_REFUND_REFUSED


def test_tables_can_be_overridden_from_settings() -> None:
    codes = tf.BestpayCodes.from_extra({"trans_status_map": {"E": "CLOSED"}, "user_paying_codes": ["WAIT_PWD"]})
    assert codes.status_map["E"] is TradeStatus.CLOSED and codes.status_map["B"] is TradeStatus.SUCCEEDED
    assert tf.trade_result(_answer(None, False, "WAIT_PWD"), codes).status is TradeStatus.PROCESSING


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"result": {}}', b'{"success": true, "result": []}'])
def test_garbage_answers_are_rejected(body: bytes) -> None:
    with pytest.raises(ValueError):
        tf.parse_answer(body)


def test_answer_sign_verifies_and_tampering_fails() -> None:
    result = {"merchantId": MERCHANT, "orderNo": WIRE_ID, "orderReqNo": WIRE_ID, "ourTransNo": "BP1",
              "transAmt": "1234", "transStatus": "B"}
    result["sign"] = md5_upper(f"MERCHANTID={MERCHANT}&ORDERNO={WIRE_ID}&ORDERREQNO={WIRE_ID}&OURTRANSNO=BP1"
                               f"&TRANSAMT=1234&TRANSSTATUS=B&KEY={KEY}")
    assert tf.trade_sign_ok(result, KEY)
    assert not tf.trade_sign_ok(dict(result, transAmt="1"), KEY)
    refund = {"oldOrderNo": WIRE_ID, "refundReqNo": "rfdX1", "transAmt": "5"}
    refund["sign"] = md5_upper(f"OLDORDERNO={WIRE_ID}&REFUNDREQNO=rfdX1&TRANSAMT=5&KEY={KEY}")
    assert tf.refund_sign_ok(refund, KEY) and not tf.refund_sign_ok(dict(refund, transAmt="6"), KEY)


def _signed(form: dict[str, str], order: tuple[str, ...]) -> bytes:
    return urlencode(dict(form, SIGN=tf.mac(order, form, KEY))).encode()


def test_payment_notification_verifies_and_maps_back() -> None:
    form = {"MERCHANTID": MERCHANT, "UPTRANSEQ": "BP9", "ORDERSEQ": WIRE_ID, "ORDERREQTRANSEQ": WIRE_ID,
            "ORDERAMOUNT": "1234", "RETNCODE": "0000", "RETNINFO": "ok", "TRANDATE": "20240101", "ENCODETYPE": "1"}
    parsed = tf.parse_form(_signed(form, tf.PAY_NOTIFY_MAC))
    assert tf.mac_ok(tf.PAY_NOTIFY_MAC, parsed, KEY, parsed["SIGN"])
    note = tf.payment_notification(parsed)
    assert note.out_trade_no == PAY_ID and note.amount == 1234 and note.payment is not None
    assert note.payment.status is TradeStatus.SUCCEEDED and note.notification_id == "BP9"
    tampered = tf.parse_form(_signed(form, tf.PAY_NOTIFY_MAC).replace(b"ORDERAMOUNT=1234", b"ORDERAMOUNT=1"))
    assert not tf.mac_ok(tf.PAY_NOTIFY_MAC, tampered, KEY, tampered["SIGN"])
    failed = tf.payment_notification(dict(form, RETNCODE="0001"))
    assert failed.payment is not None and failed.payment.status is TradeStatus.FAILED
    with pytest.raises(ValueError):
        tf.payment_notification({k: v for k, v in form.items() if k != "ORDERSEQ"})


def test_refund_notification_maps_back() -> None:
    form = {"MERCHANTID": MERCHANT, "OLDORDERNO": WIRE_ID, "REFUNDREQNO": "rfdX000000000000000000000009",
            "OURTRANSNO": "BPR1", "TRANSAMT": "300", "TRANSSTATUS": "B"}
    note = tf.refund_notification(tf.parse_form(_signed(form, tf.REFUND_NOTIFY_MAC)))
    assert note.kind == "refund" and note.out_trade_no == PAY_ID
    assert note.out_refund_no == "rfd_000000000000000000000009" and note.amount == 300
    assert note.refund is not None and note.refund.status is RefundStatus.SUCCEEDED


def test_parse_form_rejects_repeated_fields() -> None:
    with pytest.raises(ValueError):
        tf.parse_form(b"A=1&A=2")


def test_statement_round_trip_and_checks() -> None:
    rows = [["01", WIRE_ID, WIRE_ID, "BP1", "", "1000", "20240101080000", "B"],
            ["02", WIRE_ID, WIRE_ID, "BP1", "rfdX000000000000000000000009", "300", "20240101090000", "B"]]
    text = tf.statement_text(MERCHANT, "20240101", rows)
    assert text.splitlines()[0] == f"{MERCHANT}|20240101|2|1000|300"
    lines = tf.parse_statement(text)
    assert [(ln.kind, ln.out_trade_no, ln.out_refund_no, ln.amount, ln.status) for ln in lines] == [
        ("payment", PAY_ID, None, 1000, "SUCCEEDED"),
        ("refund", PAY_ID, "rfd_000000000000000000000009", 300, "REFUNDED")]
    with pytest.raises(ValueError):
        tf.parse_statement(text.replace("|1000|300", "|1001|300"))
    with pytest.raises(ValueError):
        tf.parse_statement("garbage")
