"""Bank wallet splits and payouts: payloads, answers and the payout notification (its HMAC
recomputed here with ``cryptography``'s HMAC, independently of channels.bankwallet)."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from channels.bankwallet import transformers as tf
from channels.transfers import PayoutRequest, PayoutStatus, ReceiverSpec, ShareLine, ShareRequest, ShareStatus

KEY = b"k" * 32
SPLIT = ShareRequest(out_order_no="spl_1", out_trade_no="pay_1", channel_trade_no="BW1", total_amount=10000,
                     finish=True, lines=[ShareLine(type="account", account="BWabc", amount=1500, description="佣金")])
PAYOUT = PayoutRequest(out_no="po_1", amount=12300, destination_type="account", account="BWdef", remark="结算",
                       name="张三丰", notify_url="https://pay.example.com/notify/bankwallet/payout")


def independent_hmac(ts: str, nonce: str, body: bytes) -> str:
    h = HMAC(KEY, hashes.SHA256())
    h.update(ts.encode() + b"\n" + nonce.encode() + b"\n" + body)
    return h.finalize().hex()


def test_payloads_carry_the_out_numbers_the_core_dedupes_on():
    assert tf.split_payload(SPLIT, "M1") == {
        "merchant_id": "M1", "out_trade_no": "pay_1", "out_split_no": "spl_1",
        "receivers": [{"account": "BWabc", "amount": 1500, "description": "佣金"}], "finish": True}
    assert tf.split_query_payload(SPLIT, "M1") == {"merchant_id": "M1", "out_split_no": "spl_1"}
    body = tf.payout_payload(PAYOUT, "M1")
    assert (body["out_payout_no"], body["amount"], body["account"], body["name"]) == ("po_1", 12300, "BWdef", "张三丰")
    assert tf.bind_payload(ReceiverSpec(type="account", account="BWabc"), "M1") == {"merchant_id": "M1",
                                                                                    "account": "BWabc"}
    raw = tf.encode(body)
    headers = tf.signed_headers(KEY, "1714531200", "ab" * 16, raw, "application/json")
    assert headers[tf.SIG_HEADER] == independent_hmac("1714531200", "ab" * 16, raw)


def test_split_and_payout_answers():
    ok = tf.split_result({"status": "SUCCESS", "split_no": "BWS1", "receivers": [
        {"account": "BWabc", "amount": 1500, "status": "SUCCESS"}]})
    assert (ok.status, ok.channel_order_no, ok.lines[0].amount) == (ShareStatus.SUCCEEDED, "BWS1", 1500)
    declined = tf.split_result({"status": "FAILED", "receivers": [], "error_code": "RECEIVER_NOT_BOUND"})
    assert (declined.status, declined.failure_code) == (ShareStatus.FAILED, "RECEIVER_NOT_BOUND")
    assert tf.split_result({"error_code": tf.SPLIT_NOT_FOUND}).status is ShareStatus.NOT_FOUND
    frozen = tf.payout_result({"status": "FAILED", "error_code": "ACCOUNT_FROZEN"})
    assert (frozen.status, frozen.failure_code) == (PayoutStatus.FAILED, "ACCOUNT_FROZEN")
    assert tf.payout_result({"status": "RETURNED"}).status is PayoutStatus.RETURNED
    assert tf.payout_result({"status": "SUCCESS", "payout_no": "BWP1"}).channel_payout_no == "BWP1"
    assert tf.payout_result({"error_code": tf.PAYOUT_NOT_FOUND}).status is PayoutStatus.NOT_FOUND
    for bad in ({"status": "MAYBE"}, {"status": "SUCCESS", "receivers": [{"status": "SUCCESS"}]}):
        with pytest.raises(Exception) as e:
            (tf.payout_result if "receivers" not in bad else tf.split_result)(bad)
        assert getattr(e.value, "retriable", False)


def test_payout_notification_maps_like_a_query_answer():
    note = tf.payout_notification({"event": "payout", "notify_id": "N1", "payout": {
        "merchant_id": "M1", "out_payout_no": "po_1", "amount": 12300, "status": "SUCCESS", "payout_no": "BWP1"}})
    assert (note.out_no, note.amount, note.merchant_ref, note.result.status) == \
        ("po_1", 12300, "M1", PayoutStatus.SUCCEEDED)
    for bad in ({"event": "payment", "payout": {}}, {"event": "payout", "payout": {"out_payout_no": "po_1",
                                                                                  "status": "NEW"}}, []):
        with pytest.raises(ValueError):
            tf.payout_notification(bad)
