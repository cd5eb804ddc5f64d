"""Apple Pay's marks on the UnionPay ACP wire; every other mapping is
:mod:`channels.unionpay.transformers`.

Apple Pay carries no ACP seType: in-app, UnionPay's Apple Pay plugin
(UPAPayPlugin) takes the ``tn`` and the merchant's Apple merchant id, and the
phone's Secure Element is Apple's own, so there is nothing to mark in
``reserved``. The wallet is marked only in ``reqReserved={wallet=applepay}``
(echoed back by UnionPay), and ``pay_params`` is just ``{"tn": …}``.
"""
from __future__ import annotations

WALLET = "applepay"
SE_TYPE: str | None = None
