"""Every simulator, by the name of the channel it plays (the same names as ``channels.registry``)."""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from simulators import (alipay, applepay, bankwallet, bestpay, douyinpay, ecny, huaweipay, jdpay, qqwallet,
                        samsungpay, unionpay, wechatpay)
from simulators.kit import SimSettings

SIMULATORS: dict[str, Callable[[SimSettings], web.Application]] = {
    "wechatpay": wechatpay.create_app,
    "alipay": alipay.create_app,
    "unionpay": unionpay.create_app,
    "ecny": ecny.create_app,
    "jdpay": jdpay.create_app,
    "bestpay": bestpay.create_app,
    "qqwallet": qqwallet.create_app,
    "douyinpay": douyinpay.create_app,
    "applepay": applepay.create_app,
    "huaweipay": huaweipay.create_app,
    "samsungpay": samsungpay.create_app,
    "bankwallet": bankwallet.create_app,
}
