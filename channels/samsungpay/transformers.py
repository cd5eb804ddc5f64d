"""Samsung Pay's marks on the UnionPay ACP wire; every other mapping is
:mod:`channels.unionpay.transformers`.

Samsung Pay is ACP seType 02: an in-app request carries
``reserved={seType=02}`` and ``pay_params`` hands ``{"tn", "seType": "02"}`` to
the UnionPay client SDK (``startSEPay``). The wallet is also marked in
``reqReserved={wallet=samsungpay}``, echoed back by UnionPay.
"""
from __future__ import annotations

WALLET = "samsungpay"
SE_TYPE: str | None = "02"
