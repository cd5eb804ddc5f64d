"""WeChat Pay API v3: the wire profile and what only WeChat has (codepay, reverse).

Everything WeChat shares with other v3-style APIs (ordering, query, close,
refunds, notifications, the trade bill, status mapping, yuan/fen) lives in
:mod:`channels.wxv3.transformers` and is re-exported here, so this module is
the one place to look for WeChat's mappings.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlencode

from channels import oauth
from channels.base import ChannelError, ChannelResult, Method, PayRequest, TradeStatus
from channels.wxv3.transformers import (  # noqa: F401  (re-exported: WeChat's mappings in one place)
    BILL_HEADER, BILL_SUMMARY_HEADER, CST, ORDER_PAID_CODES, TRADE_STATES, REFUND_STATES, NOT_FOUND_CODES,
    USERPAYING_CODES, V3Ids, V3Profile, app_sign_message, bill_field, bill_hash_ok, bill_path, bill_result,
    client_pay_params, close_body, close_path, close_result, common_order_fields, declined, error_code,
    fen_to_yuan, jsapi_sign_message, merchant_fields, notification_envelope, notification_from, order_body,
    order_path, parse_time, parse_trade_bill, pay_prefix_for, prepay_result, query_path, query_result,
    raise_if_unknown_outcome, refund_body, refund_query_path, refund_result, refund_status, rfc3339,
    trade_status, transaction_result, wire_out_no, yuan_to_fen,
)

PROFILE = V3Profile(
    name="wechatpay",
    auth_scheme="WECHATPAY2-SHA256-RSA2048",
    auth_fields=("mchid", "nonce_str", "signature", "timestamp", "serial_no"),
    header_prefix="Wechatpay",
    pay_prefix="/v3/pay/transactions",
    partner_prefix="/v3/pay/partner/transactions",
    refund_path="/v3/refund/domestic/refunds",
    bill_path="/v3/bill/tradebill",
    segments=((Method.BARCODE, "codepay"), (Method.QR, "native"), (Method.JSAPI, "jsapi"),
              (Method.H5, "h5"), (Method.APP, "app")),
    app_package="Sign=WXPay",
    jsapi_sign_type="RSA",
)


def codepay_body(req: PayRequest, ids: V3Ids, default_store_id: str) -> dict[str, Any]:
    """``POST …/codepay``: the scanned code in ``payer.auth_code``; codepay takes no notify_url
    (its outcome is the answer and queries) and requires ``scene_info.store_info.out_id``."""
    if not req.auth_code:
        raise ValueError("codepay needs an auth_code")
    body = common_order_fields(req, ids)
    body["payer"] = {"auth_code": req.auth_code}
    body["scene_info"] = {"store_info": {"out_id": req.store_id or default_store_id},
                          "device_ip": req.client_ip}
    return body


def codepay_result(status: int, data: Mapping[str, Any]) -> ChannelResult:
    """The codepay answer. Public clients disagree on how "the customer is entering the password"
    arrives, so both are accepted: an error ``code`` USERPAYING (any HTTP status) or a
    ``trade_state`` USERPAYING in a 2xx transaction. SYSTEMERROR/BANKERROR raise
    ChannelError(system_error); ORDERPAID (the order was already paid by an earlier call) is
    PROCESSING so that a query fetches the real result; other codes are declines."""
    code, message = error_code(data)
    if code in USERPAYING_CODES:
        return ChannelResult(status=TradeStatus.PROCESSING, failure_message=message or None)
    if status < 300 and "trade_state" in data:
        return transaction_result(data)
    raise_if_unknown_outcome(data)
    if code in ORDER_PAID_CODES:
        return ChannelResult(status=TradeStatus.PROCESSING, failure_code=code, failure_message=message)
    if status < 300:
        raise ChannelError("codepay answer without trade_state", retriable=True, kind="garbage")
    return declined(data)


def reverse_path(out_trade_no: str, ids: V3Ids) -> str:
    return f"{pay_prefix_for(PROFILE, ids)}/out-trade-no/{wire_out_no(out_trade_no)}/reverse"


def reverse_body(ids: V3Ids) -> dict[str, str]:
    return merchant_fields(ids)


def reverse_result(status: int, data: Mapping[str, Any]) -> ChannelResult:
    """REVERSED (the money, if taken, goes back); ``retry=True`` when WeChat says the customer is still
    paying or asks to call again; NOT_FOUND for an order WeChat never saw."""
    if status < 300:
        return ChannelResult(status=TradeStatus.REVERSED, channel_trade_no=data.get("transaction_id") or None)
    code, message = error_code(data)
    if code in USERPAYING_CODES or code in ("SYSTEMERROR", "FREQUENCY_LIMITED"):
        return ChannelResult(status=TradeStatus.PROCESSING, retry=True, failure_code=code, failure_message=message)
    if code in NOT_FOUND_CODES or status == 404:
        return ChannelResult(status=TradeStatus.NOT_FOUND, failure_code=code or None, failure_message=message)
    raise ChannelError(f"reverse refused: {code} {message}", retriable=False, kind="rejected")


# -- the payer's openid: the official account's web authorisation (网页授权, snsapi_base) --

OAUTH_AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
OAUTH_API_URL = "https://api.weixin.qq.com"


def oauth_authorize_url(base: str, appid: str, redirect_uri: str, state: str) -> str:
    """The silent authorisation link: WeChat checks the parameters in this order and
    needs the ``#wechat_redirect`` fragment; it comes back with ``code`` and ``state``."""
    return oauth.authorize_url(base, [("appid", appid), ("redirect_uri", redirect_uri), ("response_type", "code"),
                                      ("scope", "snsapi_base"), ("state", state)], "wechat_redirect")


def oauth_token_url(api: str, appid: str, secret: str, code: str) -> str:
    """``GET /sns/oauth2/access_token``: the code and the official account's AppSecret."""
    return f"{api.rstrip('/')}/sns/oauth2/access_token?" + urlencode(
        {"appid": appid, "secret": secret, "code": code, "grant_type": "authorization_code"})


def oauth_payer(status: int, body: bytes) -> dict[str, str]:
    """The answer ``{access_token, expires_in, refresh_token, openid, scope}`` → ``{"openid"}``;
    ``{errcode, errmsg}`` (40029 invalid code, 40163 code been used, 40125 invalid
    appsecret …) is a refusal."""
    data = oauth.json_answer(status, body, "wechatpay")
    if data.get("errcode"):
        raise oauth.refused("wechatpay", data.get("errcode"), data.get("errmsg"))
    return {"openid": oauth.payer_id(data.get("openid"), "wechatpay", "openid")}
