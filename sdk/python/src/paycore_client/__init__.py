"""paycore-client: the Python SDK of the paycore merchant API."""
from .client import MAX_WAIT, AsyncPaycoreClient, IdempotentRetry, PaycoreClient, raise_if_failed
from .errors import *  # noqa: F401,F403  (the typed exceptions)
from .models import (FINAL_STATUSES, Event, Failure, Nfc, Payer, Payment, PaymentCreate, PaymentNfc, Payout,
                     PayoutCreate, PayoutDestination, Receiver, ReceiverCreate, Refund, RefundCreate, Settlement,
                     SettlementChannel, SettlementLine, SettlementLinesPage, Split, SplitCreate, SplitReceiver,
                     SplitReceiverResult)
from .signing import canonical_string, sign, signed_headers
from .webhooks import sign_webhook, verify_webhook

__version__ = "0.1.0"
