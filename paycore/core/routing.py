"""Which channel a payment goes to: the code's prefix (barcode, sonic), the
wallet (nfc), or the channel the request names — then the channel's health."""
from __future__ import annotations

from channels.base import Method
from paycore.config import RoutePattern
from paycore.errors import InvalidRequest, UnknownAuthCode

NFC_WALLETS = frozenset({"applepay", "huaweipay", "samsungpay"})


class Router:
    def __init__(self, patterns: tuple[RoutePattern, ...]) -> None:
        self.patterns = patterns

    def for_code(self, code: str) -> str:
        for p in self.patterns:
            if p.pattern.match(code):
                return p.channel
        raise UnknownAuthCode("the payment code matches no channel", field="auth_code")

    def route(self, method: Method, channel: str | None, auth_code: str | None, wallet: str | None) -> str:
        if method in (Method.BARCODE, Method.SONIC):
            derived = self.for_code(auth_code or "")
            if channel and channel != derived:
                raise InvalidRequest(f"the payment code belongs to {derived}, not {channel}", field="channel")
            return derived
        if method is Method.NFC:
            derived = wallet if wallet in NFC_WALLETS else "unionpay"
            if channel and channel not in (derived, "unionpay"):
                raise InvalidRequest("nfc payments go through unionpay or the tapping wallet", field="channel")
            return channel if channel and wallet is None else derived
        if not channel:
            raise InvalidRequest("channel is required for this method", field="channel")
        return channel
