"""Douyin Pay v1 simulator: :class:`channels.wxv3.simulator.V3Simulator` with Douyin's
``DouyinPay-RSA`` Authorization, ``Douyinpay-`` answer headers and ``/v1/…`` paths.

No barcode API and no service-provider mode. The trade bill is applied for
at ``/v1/bill/billapply`` and downloaded from ``/v1/bill/download?token=``
(the download path is this simulator's choice; the adapter follows
``download_url``). In-app orders answer ``prepay_id`` (jsapi/app) or
``h5_url``; native orders a ``code_url``.

It also plays Douyin's silent authorisation for web pages inside Douyin
(``GET /passport/open/silent_auth/``, scope login_id, straight back with
``code`` and ``state``) and the token API (``POST /oauth/access_token/`` with
``client_key``, ``client_secret``, ``code`` → ``data.open_id``; a refusal is
``data.error_code`` non-zero).
"""
from __future__ import annotations

import json
import secrets

from aiohttp import web

from channels.douyinpay.transformers import PROFILE
from simulators import kit as simkit
from simulators.kit import SimSettings
from simulators.wxv3 import V3Simulator


class DouyinOAuth:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        # Douyin's open_id: a hyphenated UUID-like string
        self.server = simkit.OAuthServer(settings, lambda: "_000" + secrets.token_hex(16))

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("response_type") != "code":
            return web.Response(status=400, text="response_type 参数错误", content_type="text/plain")
        return self.server.authorize(request, client_id="client_key", scope="login_id", code_param="code")

    @staticmethod
    def refused(code: int, description: str) -> web.Response:
        return web.json_response({"data": {"error_code": code, "description": description}, "message": "error"})

    async def token(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return self.refused(2100005, "参数不合法")
        if data.get("client_key") != self.settings.app_id:
            return self.refused(10013, "client_key 错误")
        if not self.server.app_secret or data.get("client_secret") != self.server.app_secret:
            return self.refused(10013, "client_secret 错误")
        if data.get("grant_type") != "authorization_code":
            return self.refused(10020, "grant_type 错误")
        open_id = self.server.redeem(str(data.get("code", "")))
        if open_id is None:
            return self.refused(10007, "授权码过期")
        return web.json_response({"data": {
            "access_token": secrets.token_hex(20), "open_id": open_id, "expires_in": 1296000,
            "refresh_token": secrets.token_hex(20), "refresh_expires_in": 2592000, "scope": "login_id",
            "error_code": 0, "description": ""}, "message": "success"})


def create_app(settings: SimSettings) -> web.Application:
    app = V3Simulator(
        settings, PROFILE, code_url_prefix="https://pay.douyinpay.com/qr/",
        h5_url_prefix="https://cashier.douyinpay.com/h5?prepay_id=", prepay_prefix="dy",
        trade_no_prefix="7100", refund_no_prefix="7300", download_path="/v1/bill/download").app
    oauth = DouyinOAuth(settings)
    app.router.add_get("/passport/open/silent_auth/", oauth.authorize)
    app.router.add_post("/oauth/access_token/", oauth.token)
    return app
