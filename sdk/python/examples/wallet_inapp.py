"""The bank's wallet app backend: an in-app payment.

The backend creates an ``app`` payment, hands ``pay_params`` to the phone
app (which opens the channel's cashier), and long-polls until the customer
has paid, instead of trusting what the app says.

    PAYCORE_BASE_URL=… PAYCORE_MERCHANT_ID=… PAYCORE_SECRET=… python wallet_inapp.py --amount 990
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from paycore_client import PaycoreClient, PaymentCreate, WaitTimeoutError


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--amount", type=int, required=True, help="fen")
    ap.add_argument("--channel", default="wechatpay")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    with PaycoreClient(os.environ["PAYCORE_BASE_URL"], os.environ["PAYCORE_MERCHANT_ID"],
                       os.environ["PAYCORE_SECRET"]) as client:
        order = PaymentCreate(merchant_order_no="app-" + secrets.token_hex(8), amount=args.amount, method="app",
                              channel=args.channel, subject="Wallet top-up", metadata={"user": "u-42"})
        payment = client.create_payment(order)
        # what the backend sends to the phone app
        print(json.dumps({"step": "to_app", "id": payment.id, "status": payment.status,
                          "pay_params": payment.pay_params}), flush=True)
        try:
            payment = client.wait_for_final(payment.id, timeout=args.timeout)
        except WaitTimeoutError as e:
            print(json.dumps({"step": "not_paid_yet", "id": e.payment.id, "status": e.payment.status}), flush=True)
            client.cancel_payment(payment.id)
            return 4
        print(json.dumps({"step": "final", "id": payment.id, "status": payment.status,
                          "paid_at": payment.paid_at.isoformat() if payment.paid_at else None}), flush=True)
        return 0 if payment.status == "SUCCEEDED" else 3


if __name__ == "__main__":
    sys.exit(main())
