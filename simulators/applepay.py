"""Apple Pay simulator: UnionPay's, for nfc and app consumes carrying this wallet's marks."""
from __future__ import annotations

from aiohttp import web

from channels.applepay import transformers as w
from simulators.kit import SimSettings
from simulators.unionpay import UnionPaySimulator


class ApplePaySimulator(UnionPaySimulator, wallet=w.WALLET, se_type=w.SE_TYPE):
    """UnionPay's simulator under Apple Pay's name."""


def create_app(settings: SimSettings) -> web.Application:
    return ApplePaySimulator.create_app(settings)
