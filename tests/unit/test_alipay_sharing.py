"""Alipay profit sharing (交易分账) and transfers (单笔转账): biz contents, answers, and the
signatures of the new methods against strings written out here and signed with
``cryptography`` directly (the key and helper of test_alipay_transformers)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from channels.alipay import sharing as sh
from channels.alipay import transformers as t
from channels.base import ChannelError, Method
from channels.transfers import PayoutRequest, PayoutStatus, ReceiverSpec, ShareLine, ShareRequest, ShareStatus
from tests.unit.test_alipay_transformers import KEY, PUB, direct_sign

TS = datetime(2024, 5, 1, 2, 3, 4, tzinfo=timezone.utc)      # 2024-05-01 10:03:04 in Beijing
SPLIT = ShareRequest(out_order_no="spl_0190abcdefghijklmnopqrstu", out_trade_no="pay_x",
                     channel_trade_no="2024050122001", total_amount=10000, finish=False,
                     lines=[ShareLine(type="user_id", account="2088101126708402", amount=2000, description="佣金")])
PAYOUT = PayoutRequest(out_no="po_0190abcdefghijklmnopqrstuv", amount=12345, destination_type="account",
                       account="payee@example.com", remark="佣金结算", name="张三丰")


def signed_form(api_method: str, biz: dict) -> dict[str, str]:
    return t.sign_params(t.common_params(app_id="2021000000000001", api_method=api_method, biz=biz, timestamp=TS),
                         KEY)


def test_settle_is_signed_over_the_sorted_form_with_its_exact_biz_content():
    form = signed_form(sh.SETTLE, sh.settle_biz(SPLIT))
    biz = ('{"out_request_no":"spl_0190abcdefghijklmnopqrstu","trade_no":"2024050122001","royalty_parameters":'
           '[{"royalty_type":"transfer","trans_in_type":"userId","trans_in":"2088101126708402","amount":"20.00",'
           '"desc":"佣金"}],"extend_params":{"royalty_finish":"false"},"royalty_mode":"async"}')
    assert form["biz_content"] == biz
    content = (f"app_id=2021000000000001&biz_content={biz}&charset=utf-8&method=alipay.trade.order.settle"
               "&sign_type=RSA2&timestamp=2024-05-01 10:03:04&version=1.0")
    assert form["sign"] == direct_sign(content)


def test_transfer_is_signed_and_names_the_payee_for_alipay_to_check():
    form = signed_form(sh.TRANSFER, sh.transfer_biz(PAYOUT))
    biz = ('{"out_biz_no":"po_0190abcdefghijklmnopqrstuv","trans_amount":"123.45","product_code":'
           '"TRANS_ACCOUNT_NO_PWD","biz_scene":"DIRECT_TRANSFER","order_title":"佣金结算","payee_info":'
           '{"identity":"payee@example.com","identity_type":"ALIPAY_LOGON_ID","name":"张三丰"},"remark":"佣金结算"}')
    assert form["biz_content"] == biz
    content = (f"app_id=2021000000000001&biz_content={biz}&charset=utf-8&method=alipay.fund.trans.uni.transfer"
               "&sign_type=RSA2&timestamp=2024-05-01 10:03:04&version=1.0")
    assert form["sign"] == direct_sign(content)
    assert "张三丰" not in repr(PAYOUT)


@pytest.mark.parametrize("api_method,biz", [
    (sh.RELATION_BIND, sh.bind_biz(ReceiverSpec(type="user_id", account="2088101126708402"), "bind1")),
    (sh.SETTLE_QUERY, sh.settle_query_biz(SPLIT)),
    (sh.TRANSFER_QUERY, sh.transfer_query_biz(PAYOUT)),
])
def test_every_new_method_is_signed_over_the_same_rule(api_method: str, biz: dict):
    form = signed_form(api_method, biz)
    content = "&".join(f"{k}={form[k]}" for k in sorted(form) if k != "sign")
    assert form["sign"] == direct_sign(content)
    assert t.rsa2_verify(PUB, content, form["sign"])


def test_answers_of_the_new_methods_verify_over_their_raw_member():
    body = {"code": "10000", "msg": "Success", "trade_no": "2024050122001", "settle_no": "2024050100001"}
    text = t.render_answer(t.response_key(sh.SETTLE), body, lambda raw: direct_sign(raw), style=2)
    answer = t.open_answer(text, sh.SETTLE)
    assert answer.body == body and t.rsa2_verify(PUB, answer.raw, answer.sign)
    assert sh.settle_result("10000", answer.body).channel_order_no == "2024050100001"


def test_bind_and_release_bodies():
    spec = ReceiverSpec(type="account", account="shop@example.com", name="示例科技有限公司")
    no = sh.bind_request_no(spec)
    assert no == sh.bind_request_no(ReceiverSpec(type="account", account="shop@example.com"))
    assert t.OUT_NO_RE.match(no)
    assert sh.bind_biz(spec, no) == {"receiver_list": [{"type": "loginName", "account": "shop@example.com",
                                                        "name": "示例科技有限公司"}], "out_request_no": no}
    release = ShareRequest(out_order_no="spl_1", out_trade_no="pay_x", channel_trade_no="2024", total_amount=1,
                           lines=[], finish=True)
    assert sh.settle_biz(release)["royalty_parameters"] == []
    assert sh.settle_biz(release)["extend_params"] == {"royalty_finish": "true"}
    held = t.pay_biz(method=Method.QR, out_trade_no="pay_x", amount=100, subject="s",
                     expire_at=TS + timedelta(minutes=5), royalty_freeze=True)
    assert held.biz["extend_params"] == {"royalty_freeze": "true"}
    assert "extend_params" not in t.pay_biz(method=Method.QR, out_trade_no="pay_x", amount=100, subject="s",
                                            expire_at=TS).biz


def test_settle_answers_map_to_open_or_final_statuses():
    refused = sh.settle_result("40004", {"sub_code": sh.ALLOC_AMOUNT_ERROR, "sub_msg": "分账金额超过最大可分账金额"})
    assert (refused.status, refused.failure_code) == (ShareStatus.FAILED, sh.ALLOC_AMOUNT_ERROR)
    with pytest.raises(ChannelError) as e:
        sh.settle_result("40004", {"sub_code": "ACQ.SYSTEM_ERROR"})
    assert e.value.retriable

    def detail(state: str, **kw) -> dict:
        return {"operation_type": "transfer", "trans_in": "2088101126708402", "trans_in_type": "userId",
                "amount": "20.00", "state": state, **kw}
    done = sh.settle_query_result("10000", {"royalty_detail_list": [detail("SUCCESS")]}, SPLIT)
    assert done.status is ShareStatus.SUCCEEDED and done.lines[0].amount == 2000
    failed = sh.settle_query_result("10000", {"royalty_detail_list": [detail("FAIL", error_code="RECEIVER_FROZEN")]},
                                    SPLIT)
    assert (failed.status, failed.lines[0].failure_code) == (ShareStatus.FAILED, "RECEIVER_FROZEN")
    assert sh.settle_query_result("10000", {"royalty_detail_list": [detail("PROCESSING")]}, SPLIT).status \
        is ShareStatus.PROCESSING
    # accepted, no detail yet: not final
    assert sh.settle_query_result("10000", {"royalty_detail_list": []}, SPLIT).status is ShareStatus.PROCESSING
    refund_only = [detail("SUCCESS", operation_type="transfer_refund")]
    assert sh.settle_query_result("10000", {"royalty_detail_list": refund_only}, SPLIT).status \
        is ShareStatus.PROCESSING
    assert sh.settle_query_result("40004", {"sub_code": sh.SETTLE_NOT_EXIST}, SPLIT).status is ShareStatus.NOT_FOUND
    with pytest.raises(ChannelError):
        sh.settle_query_result("40004", {"sub_code": "ACQ.INVALID_PARAMETER"}, SPLIT)
    with pytest.raises(ChannelError):
        sh.settle_query_result("10000", {"royalty_detail_list": [detail("WHATEVER")]}, SPLIT)


def test_transfer_answers_map_to_final_or_open_statuses():
    ok = sh.transfer_result("10000", {"status": "SUCCESS", "order_id": "20240501110070000006"})
    assert (ok.status, ok.channel_payout_no) == (PayoutStatus.SUCCEEDED, "20240501110070000006")
    frozen = sh.transfer_result("40004", {"sub_code": "PAYEE_ACCOUNT_STATUS_ERROR", "sub_msg": "收款方账户状态异常"})
    assert (frozen.status, frozen.failure_code) == (PayoutStatus.FAILED, "PAYEE_ACCOUNT_STATUS_ERROR")
    returned = sh.transfer_result("10000", {"status": "REFUND", "fail_reason": "退票"}, query=True)
    assert (returned.status, returned.failure_code) == (PayoutStatus.RETURNED, "REFUND")
    assert sh.transfer_result("10000", {"status": "DEALING"}, query=True).status is PayoutStatus.PROCESSING
    assert sh.transfer_result("40004", {"sub_code": "ORDER_NOT_EXIST"}, query=True).status is PayoutStatus.NOT_FOUND
    for body, query in (({"sub_code": "SYSTEM_ERROR"}, False), ({"sub_code": "INVALID_PARAMETER"}, True)):
        with pytest.raises(ChannelError) as e:
            sh.transfer_result("40004", body, query=query)
        assert e.value.retriable
    with pytest.raises(ChannelError):
        sh.transfer_result("10000", {"status": "SOMETHING_NEW"})
    with pytest.raises(ChannelError):
        sh.transfer_biz(PayoutRequest(out_no="po_1", amount=1, destination_type="openid", account="o", remark="r"))
