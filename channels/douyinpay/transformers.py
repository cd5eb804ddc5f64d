"""Douyin Pay v1: its wire profile. The mappings are WeChat-v3 style and shared
(:mod:`channels.wxv3.transformers`, re-exported here); what differs is the
Authorization scheme and field order, the ``Douyinpay-`` answer headers,
the paths, the app ``package`` and the JSAPI ``signType``.
"""
from __future__ import annotations

from channels.base import Method
from channels.wxv3.transformers import (  # noqa: F401  (re-exported: Douyin's mappings in one place)
    BILL_HEADER, CST, REFUND_STATES, TRADE_STATES, V3Ids, V3Profile, app_sign_message, bill_path, bill_result,
    client_pay_params, close_body, close_path, close_result, fen_to_yuan, jsapi_sign_message,
    notification_envelope, notification_from, order_body, order_path, parse_trade_bill, prepay_result,
    query_path, query_result, refund_body, refund_query_path, refund_result, refund_status, rfc3339,
    trade_status, transaction_result, wire_out_no, yuan_to_fen,
)

PROFILE = V3Profile(
    name="douyinpay",
    auth_scheme="DouyinPay-RSA",
    auth_fields=("mchid", "nonce_str", "timestamp", "serial_no", "signature"),
    header_prefix="Douyinpay",
    pay_prefix="/v1/trade/transactions",
    partner_prefix=None,
    refund_path="/v1/trade/refund/domestic/refunds",
    bill_path="/v1/bill/billapply",
    segments=((Method.QR, "native"), (Method.JSAPI, "jsapi"), (Method.H5, "h5"), (Method.APP, "app")),
    app_package="Sign=DYPay",
    jsapi_sign_type="DouyinPay-RSA",
)
