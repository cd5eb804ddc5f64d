"""A POS terminal's barcode flow: scan the customer's payment code → pay →
long-poll while the customer confirms on the phone → (later) refund an item.

    PAYCORE_BASE_URL=http://127.0.0.1:8080 PAYCORE_MERCHANT_ID=m_demo PAYCORE_SECRET=… \\
        python pos_barcode.py --amount 1234 --refund 200      # then type (or scan) the code

Prints one JSON line per step. Amounts are integer fen.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from paycore_client import Payment, PaycoreClient, PaymentFailedError


def checkout(client: PaycoreClient, order_no: str, amount: int, auth_code: str, *, terminal_id: str = "pos-01",
             timeout: float = 60.0) -> Payment:
    """Charge the scanned code. The SDK retries a lost answer with the same
    ``merchant_order_no``, so a flaky link never charges twice. While the
    customer types a password the payment is PROCESSING: long-poll it."""
    payment = client.create_payment(merchant_order_no=order_no, amount=amount, method="barcode",
                                    auth_code=auth_code, subject="POS sale", terminal_id=terminal_id)
    emit("paid" if payment.is_final else "waiting", payment)
    if not payment.is_final:
        payment = client.wait_for_final(payment.id, timeout=timeout)   # FAILED raises PaymentFailedError
        emit("final", payment)
    return payment


def emit(step: str, p: Payment) -> None:
    print(json.dumps({"step": step, "id": p.id, "status": p.status, "channel": p.channel, "amount": p.amount}),
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--amount", type=int, required=True, help="fen")
    ap.add_argument("--refund", type=int, default=0, help="fen to refund afterwards (an item returned)")
    ap.add_argument("--order-no", default="pos-" + secrets.token_hex(8))
    args = ap.parse_args()
    code = sys.stdin.readline().strip()     # the scanner types the code and a newline
    with PaycoreClient(os.environ["PAYCORE_BASE_URL"], os.environ["PAYCORE_MERCHANT_ID"],
                       os.environ["PAYCORE_SECRET"]) as client:
        try:
            payment = checkout(client, args.order_no, args.amount, code)
        except PaymentFailedError as e:
            print(json.dumps({"step": "declined", "id": e.payment.id, "reason": e.failure_code,
                              "channel_code": e.channel_code}), flush=True)
            return 2
        if payment.status != "SUCCEEDED":
            return 3                              # CLOSED or REVERSED: nothing taken
        if args.refund:
            refund = client.create_refund(payment.id, refund_no=f"{args.order_no}-r1", amount=args.refund,
                                          reason="item returned")
            print(json.dumps({"step": "refund", "id": refund.id, "status": refund.status,
                              "amount": refund.amount}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
