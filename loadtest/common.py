"""What every load generator here shares: request signing (api.md), payment
codes by channel prefix and amounts that keep clear of the simulators'
scenario endings.

Standard library only, so the locustfile runs on a load machine that has
locust and nothing of paycore.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import random
import time

#: scanned payment codes: prefix → channel (config/default.toml [[routing.prefixes]]), 18 or 19 digits
BARCODE_PREFIXES: dict[str, tuple[str, int]] = {
    "wechatpay": ("13", 18),
    "alipay": ("28", 18),
    "unionpay": ("62", 19),
    "jdpay": ("18", 18),
    "bestpay": ("51", 18),
    "ecny": ("01", 19),
    "qqwallet": ("91", 18),
    "bankwallet": ("88", 18),
}


def auth_code(channel: str, rnd: random.Random = random._inst) -> str:  # type: ignore[attr-defined]
    prefix, length = BARCODE_PREFIXES[channel]
    return prefix + "".join(rnd.choices("0123456789", k=length - len(prefix)))


def amount(rnd: random.Random = random._inst, low: int = 100, high: int = 99_999) -> int:  # type: ignore[attr-defined]
    """A fen amount whose last two digits are not 11–25: the simulators read
    those as scenarios (user paying, declined, system error, slow, refunds
    answered late, amounts that differ …; see simulators/kit.py Scenario),
    which a load test must only ask for on purpose."""
    while True:
        a = rnd.randint(low, high)
        if not 11 <= a % 100 <= 25:
            return a


def nonce() -> str:
    return os.urandom(12).hex()


def sign(secret: bytes, method: str, path_qs: str, ts: str, nonce_: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 over ``METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY`` (api.md)."""
    msg = f"{method}\n{path_qs}\n{ts}\n{nonce_}\n".encode() + body
    return hmac.digest(secret, msg, hashlib.sha256).hex()


def signed_headers(merchant: str, secret: bytes, method: str, path_qs: str, body: bytes = b"") -> dict[str, str]:
    ts, n = str(int(time.time())), nonce()
    h = {"X-Paycore-Merchant": merchant, "X-Paycore-Timestamp": ts, "X-Paycore-Nonce": n,
         "X-Paycore-Signature": sign(secret, method, path_qs, ts, n, body)}
    if body:
        h["Content-Type"] = "application/json"
    return h


def order_no(prefix: str = "lt") -> str:
    return f"{prefix}{time.time_ns():x}{os.urandom(4).hex()}"
