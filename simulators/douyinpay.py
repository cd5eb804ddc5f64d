"""Douyin Pay v1 simulator: :class:`channels.wxv3.simulator.V3Simulator` with Douyin's
``DouyinPay-RSA`` Authorization, ``Douyinpay-`` answer headers and ``/v1/…`` paths.

No barcode API and no service-provider mode. The trade bill is applied for
at ``/v1/bill/billapply`` and downloaded from ``/v1/bill/download?token=``
(the download path is this simulator's choice; the adapter follows
``download_url``). In-app orders answer ``prepay_id`` (jsapi/app) or
``h5_url``; native orders a ``code_url``.
"""
from __future__ import annotations

from aiohttp import web

from channels.douyinpay.transformers import PROFILE
from simulators.kit import SimSettings
from simulators.wxv3 import V3Simulator


def create_app(settings: SimSettings) -> web.Application:
    return V3Simulator(
        settings, PROFILE, code_url_prefix="https://pay.douyinpay.com/qr/",
        h5_url_prefix="https://cashier.douyinpay.com/h5?prepay_id=", prepay_prefix="dy",
        trade_no_prefix="7100", refund_no_prefix="7300", download_path="/v1/bill/download").app
