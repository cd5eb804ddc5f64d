"""Douyin Pay v1: its wire profile. The mappings are WeChat-v3 style and shared
(:mod:`channels.wxv3.transformers`, re-exported here); what differs is the
Authorization scheme and field order, the ``Douyinpay-`` answer headers,
the paths, the app ``package`` and the JSAPI ``signType``.
"""
from __future__ import annotations

import json

from channels import oauth
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


# -- the payer's open_id: Douyin's silent authorisation for Douyin Pay in its web view --
# (open.douyin.com "网页应用获取openid": scope login_id, granted to Douyin Pay merchants' web apps)

OAUTH_AUTHORIZE_URL = "https://aweme.snssdk.com/passport/open/silent_auth/"
OAUTH_API_URL = "https://open.douyin.com"


def oauth_authorize_url(base: str, client_key: str, redirect_uri: str, state: str) -> str:
    """The silent authorisation link, opened inside Douyin; it comes back with ``code`` and ``state``."""
    return oauth.authorize_url(base, [("client_key", client_key), ("response_type", "code"), ("scope", "login_id"),
                                      ("redirect_uri", redirect_uri), ("state", state)])


def oauth_token_request(api: str, client_key: str, client_secret: str, code: str) -> tuple[str, bytes]:
    """``POST /oauth/access_token/`` with a JSON body: (url, body)."""
    body = json.dumps({"client_key": client_key, "client_secret": client_secret, "code": code,
                       "grant_type": "authorization_code"}).encode()
    return f"{api.rstrip('/')}/oauth/access_token/", body


def oauth_payer(status: int, body: bytes) -> dict[str, str]:
    """``{"data": {"access_token", "open_id", …, "error_code": 0}, "message": "success"}`` →
    ``{"openid"}``; a non-zero ``data.error_code`` (10007 code expired, 10013 bad client
    key …) is a refusal."""
    answer = oauth.json_answer(status, body, "douyinpay")
    data = answer.get("data")
    if not isinstance(data, dict):
        raise oauth.refused("douyinpay", answer.get("err_no"), answer.get("message"))
    if data.get("error_code") not in (0, None):
        raise oauth.refused("douyinpay", data.get("error_code"), data.get("description"))
    return {"openid": oauth.payer_id(data.get("open_id"), "douyinpay", "open_id")}
