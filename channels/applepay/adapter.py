"""Apple Pay through UnionPay ACP 5.1.0 (channels.md §9–11).

In-app by ``appTransReq.do`` → ``tn``, in-store as a contactless UnionPay
consume (01/01). Protocol, signing, recovery and every choice are
:class:`channels.unionpay.adapter.UnionPayAdapter`'s; the wallet's marks are in
:mod:`channels.applepay.transformers`. ``ChannelResult.wallet`` is the tap's
``nfc.wallet`` when it names one, else ``"applepay"``.

Final provider answers (docs/reliability.md has the table of every channel):
as UnionPay (the NFC token goes through the card network): see channels/unionpay.
"""
from __future__ import annotations

from channels.applepay import transformers as w
from channels.unionpay.adapter import UnionPayAdapter


class ApplePayAdapter(UnionPayAdapter, wallet=w.WALLET, se_type=w.SE_TYPE):
    """Apple Pay: UnionPay's adapter under the wallet's name (nfc, app)."""


ADAPTER = ApplePayAdapter
