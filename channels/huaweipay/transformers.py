"""Huawei Pay's marks on the UnionPay ACP wire; every other mapping is
:mod:`channels.unionpay.transformers`.

Huawei Pay is ACP seType 04: an in-app request carries
``reserved={seType=04}`` and ``pay_params`` hands ``{"tn", "seType": "04"}`` to
the UnionPay client SDK (``startSEPay``). The wallet is also marked in
``reqReserved={wallet=huaweipay}``, echoed back by UnionPay.
"""
from __future__ import annotations

WALLET = "huaweipay"
SE_TYPE: str | None = "04"
