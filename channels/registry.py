"""Every channel adapter, imported explicitly: adding one is one package plus one line here.

The simulators that play these providers are in the ``simulators`` package,
which nothing in ``channels`` or ``paycore`` imports.
"""
from __future__ import annotations

from channels.alipay import adapter as _alipay
from channels.applepay import adapter as _applepay
from channels.bankwallet import adapter as _bankwallet
from channels.base import ChannelAdapter
from channels.bestpay import adapter as _bestpay
from channels.douyinpay import adapter as _douyinpay
from channels.ecny import adapter as _ecny
from channels.huaweipay import adapter as _huaweipay
from channels.jdpay import adapter as _jdpay
from channels.qqwallet import adapter as _qqwallet
from channels.samsungpay import adapter as _samsungpay
from channels.unionpay import adapter as _unionpay
from channels.wechatpay import adapter as _wechatpay

_MODULES = (_wechatpay, _alipay, _unionpay, _ecny, _jdpay, _bestpay, _qqwallet, _douyinpay, _applepay, _huaweipay,
            _samsungpay, _bankwallet)

ADAPTERS: dict[str, type[ChannelAdapter]] = {m.ADAPTER.name: m.ADAPTER for m in _MODULES}
