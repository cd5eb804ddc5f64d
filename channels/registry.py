"""Every channel, imported explicitly: adding one is one package plus one line here."""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from channels.base import ChannelAdapter
from channels.simkit import SimSettings

ADAPTERS: dict[str, type[ChannelAdapter]] = {}
SIMULATORS: dict[str, Callable[[SimSettings], web.Application]] = {}


def _register(name: str) -> None:
    import importlib
    try:
        adapter = importlib.import_module(f"channels.{name}.adapter")
        sim = importlib.import_module(f"channels.{name}.simulator")
    except ModuleNotFoundError as e:  # bring-up only: a channel package not written yet
        if e.name and e.name.startswith(f"channels.{name}"):
            return
        raise
    ADAPTERS[name] = adapter.ADAPTER
    SIMULATORS[name] = sim.create_app


for _name in ("wechatpay", "alipay", "unionpay", "ecny", "jdpay", "bestpay", "qqwallet", "douyinpay",
              "applepay", "huaweipay", "samsungpay", "bankwallet"):
    _register(_name)
