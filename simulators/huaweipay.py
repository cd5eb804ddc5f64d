"""Huawei Pay simulator: UnionPay's, for nfc and app consumes carrying this wallet's marks."""
from __future__ import annotations

from aiohttp import web

from channels.huaweipay import transformers as w
from simulators.kit import SimSettings
from simulators.unionpay import UnionPaySimulator


class HuaweiPaySimulator(UnionPaySimulator, wallet=w.WALLET, se_type=w.SE_TYPE):
    """UnionPay's simulator under Huawei Pay's name."""


def create_app(settings: SimSettings) -> web.Application:
    return HuaweiPaySimulator.create_app(settings)
