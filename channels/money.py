"""Amounts as yuan strings: int fen ↔ ``"12.34"``, by integer arithmetic only.

One implementation for every channel whose wire or statement format writes
amounts in yuan (alipay, the WeChat Pay v3 family, qqwallet, bankwallet,
ecny); a float never touches an amount. Channels whose wire format is
already fen (unionpay's txnAmt, bestpay, jdpay) keep their own helpers.

Strict by default: ASCII digits with no sign, no blanks and no zeros in
front, then one or two decimals; anything else (``1e3``, ``1.234``, ``.5``,
``1.``, ``1,00``, ``"１.00"``) is a ValueError, never rounded. The keywords
loosen exactly one thing each, for the channels that need it:

* ``allow_negative``: a leading ``-`` (statement refund rows);
* ``padded``: blanks around the amount and zeros in front of it
  (``" 007.50 "``), as statement cells carry them.
"""
from __future__ import annotations

import re

#: the largest amount, in fen, that any request or code may carry (10^13 yuan)
MAX_AMOUNT = 10**15

_YUAN = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?")
_PADDED_YUAN = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{1,2}))?")


class AmountTypeError(TypeError, ValueError):
    """An amount of the wrong Python type (a float, a bool, a str of fen …).

    Both a TypeError and a ValueError, so callers that caught either from
    the channels' former helpers still catch it."""


def fen_to_yuan(fen: int, *, allow_negative: bool = False) -> str:
    """``1234`` → ``"12.34"``; always two decimals. A negative amount is a
    ValueError unless ``allow_negative`` (then ``-5`` → ``"-0.05"``)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise AmountTypeError(f"amount in fen must be an int, got {fen!r}")
    if fen < 0 and not allow_negative:
        raise ValueError(f"amount in fen must be non-negative, got {fen!r}")
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"


def yuan_to_fen(text: str, *, allow_negative: bool = False, padded: bool = False) -> int:
    """``"12.34"`` → ``1234``; ``"12"`` and ``"12.3"`` accepted; anything else
    raises ValueError (see the module docstring for what the keywords allow)."""
    if not isinstance(text, str):
        raise AmountTypeError(f"not a yuan amount: {text!r}")
    m = _PADDED_YUAN.fullmatch(text.strip()) if padded else _YUAN.fullmatch(text)
    if m is None or (m.group(1) and not allow_negative):
        raise ValueError(f"not a yuan amount: {text!r}")
    sign, whole, frac = m.groups()
    fen = int(whole) * 100 + int((frac or "").ljust(2, "0"))
    return -fen if sign else fen
