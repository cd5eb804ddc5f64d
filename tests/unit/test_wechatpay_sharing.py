"""WeChat Pay v3 profit sharing (分账) and merchant transfers (商家转账): bodies, answers,
and the signatures of the new endpoints against vectors computed independently with
``cryptography`` (the key and helpers of test_wechatpay_transformers)."""
from __future__ import annotations

import base64

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from channels.base import ChannelError
from channels.transfers import (PayoutRequest, PayoutStatus, ReceiverSpec, ShareLine, ShareRequest,
                                ShareReturnRequest, ShareStatus)
from channels.wechatpay import sharing as S
from channels.wxv3 import crypto
from tests.unit.test_wechatpay_transformers import IDS, KEY, PROVIDER_SERIAL, adapter, independent_sign  # noqa: F401

TS, NONCE = "1714531200", "NONCE0123456789NONCE0123456789AB"
#: SHA256withRSA of "POST\n<path>\n1714531200\n<NONCE>\n{}\n" under the test key, computed once with `cryptography`
VECTORS = {
    S.TRANSFER_BILLS: "ODvt3sCd5R1uMA9VvVCnmKnAUd391ziUB4yDpaVeqYi75zDm3kexma7p6nN1gy6ifJwmkXsCHsMKb9zTk4RO3yxZ8BpaWp0R"
                      "kiVFNVPZvh0zQRFdkmG9gT//hsk8Mlm+HQjNrxlymN4PnLOm+oyhyAhuHYo7TDIM8bz49m4VYEozr9FqjelUcxVgazQYMlRQ"
                      "xku9Ty8g//Z5HDPtgEJ/iaXveqVmW744qKCS/WD5ZrA9FwJcpnsgM4zwmAm+Du1Dmv4NcXCS/YnMtqm7xd/2e2GKyVpk6dT0"
                      "6/81bwMjzv5KgU5hl51aK2u6VZTf3eofuBuXlYDDCyJmS/rTvh/sTA==",
    S.ORDERS: "ewWCG/+xnV1iS5Bl8s1WnLT6bjDk2m2w/MiD1ZYZFxn12211PJZr0w2vv6LO5eKZhkNtlAxIXV2aekdtp5et/+uTJBMSzvPd2niXf33k"
              "dfNT3TTgIuBrrP+vLFp12VAZ0FFsu1Cx56k1FKeC8MAelgK/fBRhFopbovO1dluo8xw/muO6Bhh6ZeLFyFvU9R2IZkkCg7rFnpkzZLZr"
              "6NcTeXd/uDVF9ZCH2nKcHeFYGigGkxpOa/fgobJPptxGjX/c6RX4vnYw1eRINWFej1aCBhFpjB8Z4wmrQsStl8jylncoiCvFE/x952RS"
              "dCK2PJGA95AFEsFG9jlP36vAUu263w==",
}


def signature(header: str) -> str:
    return crypto.parse_authorization(header)[1]["signature"]


@pytest.mark.parametrize("path", list(VECTORS))
def test_requests_to_the_new_endpoints_are_signed_as_the_vectors(adapter, path):
    assert signature(adapter.authorization("POST", path, b"{}", TS, NONCE)) == VECTORS[path]


def test_a_transfer_body_is_signed_over_its_exact_bytes_and_the_name_is_oaep_encrypted(adapter):
    name, headers = adapter._sensitive("张三丰")
    assert headers == {"Wechatpay-Serial": PROVIDER_SERIAL}
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert KEY.decrypt(base64.b64decode(name), oaep).decode() == "张三丰"   # the platform key opens it
    req = PayoutRequest(out_no="po_0190abcdefghijklmnopqrstuv", amount=400000, destination_type="openid",
                        account="o-MYE42l80oelYMDE34nYD456Xoy", remark="2024年4月佣金", name="张三丰",
                        notify_url="https://pay.example.com/notify/wechatpay/payout")
    assert "张三丰" not in repr(req) and "张**" in repr(req)
    body = S.transfer_body(req, "wxd678efh567hg6787", "1005", name)
    assert body["out_bill_no"] == "po0190abcdefghijklmnopqrstuv" and S.payout_id(body["out_bill_no"]) == req.out_no
    assert (body["transfer_amount"], body["openid"], body["user_name"]) == (400000, req.account, name)
    raw = orjson.dumps(body)
    message = b"POST\n/v3/fund-app/mch-transfer/transfer-bills\n" + TS.encode() + b"\n" + NONCE.encode() + b"\n" + raw + b"\n"
    assert signature(adapter.authorization("POST", S.TRANSFER_BILLS, raw, TS, NONCE)) == independent_sign(message)


def test_share_bodies_name_the_transaction_and_the_release():
    req = ShareRequest(out_order_no="spl_0190abcdefghijklmnopqrstu", out_trade_no="pay_x", channel_trade_no="4200001",
                       total_amount=10000, finish=True,
                       lines=[ShareLine(type="merchant", account="190001", amount=2000, description="佣金")])
    assert S.share_body(req, IDS) == {
        "appid": "wxd678efh567hg6787", "transaction_id": "4200001", "out_order_no": req.out_order_no,
        "receivers": [{"type": "MERCHANT_ID", "account": "190001", "amount": 2000, "description": "佣金"}],
        "unfreeze_unsplit": True}
    assert S.unfreeze_body(req, IDS)["transaction_id"] == "4200001"
    assert S.share_query_path(req, IDS) == f"/v3/profitsharing/orders/{req.out_order_no}?transaction_id=4200001"
    ret = ShareReturnRequest(out_return_no="spr_0190abcdefghijklmnopqrstu", out_order_no=req.out_order_no,
                             channel_order_no=None, account="190001", amount=500, description="退款")
    assert S.return_body(ret, IDS)["return_mchid"] == "190001"
    spec = ReceiverSpec(type="openid", account="oabc", name="李四")
    assert "李四" not in repr(spec)
    assert S.receiver_body(spec, IDS, None) == {"appid": "wxd678efh567hg6787", "type": "PERSONAL_OPENID",
                                                "account": "oabc", "relation_type": "PARTNER"}


def test_answers_map_to_final_or_open_statuses():
    lines = [{"type": "MERCHANT_ID", "account": "1", "amount": 10, "description": "d", "result": "SUCCESS"},
             {"type": "PERSONAL_OPENID", "account": "o", "amount": 5, "description": "d", "result": "CLOSED",
              "fail_reason": "NO_RELATION"}]
    done = S.share_result(200, {"order_id": "3008", "state": "FINISHED", "receivers": lines})
    assert done.status is ShareStatus.SUCCEEDED and done.lines[1].failure_code == "NO_RELATION"
    closed = S.share_result(200, {"state": "FINISHED", "receivers": lines[1:]})
    assert closed.status is ShareStatus.FAILED
    pending = S.share_result(200, {"state": "PROCESSING", "receivers": [dict(lines[0], result="PENDING")]})
    assert pending.status is ShareStatus.PROCESSING
    refused = S.share_result(403, {"code": "NOT_ENOUGH", "message": "分账金额不足"})
    assert (refused.status, refused.failure_code) == (ShareStatus.FAILED, "NOT_ENOUGH")
    assert S.share_result(404, {"code": "RESOURCE_NOT_EXISTS"}).status is ShareStatus.NOT_FOUND
    for status, data in ((500, {"code": "SYSTEM_ERROR"}), (429, {"code": "FREQUENCY_LIMITED"})):
        with pytest.raises(ChannelError) as e:
            S.share_result(status, data)
        assert e.value.retriable
    assert S.transfer_result(200, {"state": "WAIT_USER_CONFIRM"}).status is PayoutStatus.PROCESSING
    assert S.transfer_result(200, {"state": "SUCCESS", "transfer_bill_no": "1330"}).status is PayoutStatus.SUCCEEDED
    failed = S.transfer_result(200, {"state": "FAIL", "fail_reason": "ACCOUNT_FROZEN"})
    assert (failed.status, failed.failure_code) == (PayoutStatus.FAILED, "ACCOUNT_FROZEN")
    with pytest.raises(ChannelError):
        S.transfer_result(200, {"state": "SOMETHING_NEW"})
    assert S.return_result(200, {"result": "SUCCESS"}).status is ShareStatus.SUCCEEDED
