"""Every channel, imported explicitly: adding one is one package plus one line here."""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from channels.alipay import adapter as _alipay, simulator as _alipay_sim
from channels.applepay import adapter as _applepay, simulator as _applepay_sim
from channels.bankwallet import adapter as _bankwallet, simulator as _bankwallet_sim
from channels.base import ChannelAdapter
from channels.bestpay import adapter as _bestpay, simulator as _bestpay_sim
from channels.douyinpay import adapter as _douyinpay, simulator as _douyinpay_sim
from channels.ecny import adapter as _ecny, simulator as _ecny_sim
from channels.huaweipay import adapter as _huaweipay, simulator as _huaweipay_sim
from channels.jdpay import adapter as _jdpay, simulator as _jdpay_sim
from channels.qqwallet import adapter as _qqwallet, simulator as _qqwallet_sim
from channels.samsungpay import adapter as _samsungpay, simulator as _samsungpay_sim
from channels.simkit import SimSettings
from channels.unionpay import adapter as _unionpay, simulator as _unionpay_sim
from channels.wechatpay import adapter as _wechatpay, simulator as _wechatpay_sim

_PAIRS = (
    (_wechatpay, _wechatpay_sim),
    (_alipay, _alipay_sim),
    (_unionpay, _unionpay_sim),
    (_ecny, _ecny_sim),
    (_jdpay, _jdpay_sim),
    (_bestpay, _bestpay_sim),
    (_qqwallet, _qqwallet_sim),
    (_douyinpay, _douyinpay_sim),
    (_applepay, _applepay_sim),
    (_huaweipay, _huaweipay_sim),
    (_samsungpay, _samsungpay_sim),
    (_bankwallet, _bankwallet_sim),
)

ADAPTERS: dict[str, type[ChannelAdapter]] = {a.ADAPTER.name: a.ADAPTER for a, _ in _PAIRS}
SIMULATORS: dict[str, Callable[[SimSettings], web.Application]] = {a.ADAPTER.name: s.create_app for a, s in _PAIRS}
