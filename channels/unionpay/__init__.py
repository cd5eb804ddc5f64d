"""UnionPay ACP 5.1.0 (云闪付 QR, contactless, in-app ``tn``).

The Apple Pay, Huawei Pay and Samsung Pay channels reach the platform through
the same protocol and reuse this package's adapter and simulator.
"""
