"""Apple Pay through UnionPay ACP 5.1.0: the UnionPay package with the wallet's marks."""
