"""The machine-readable map from the merchant API to this SDK.

``OPERATIONS``: operationId → (``METHOD path``, client method, {API parameter:
Python parameter}). ``SCHEMAS``: OpenAPI schema (``Name`` for a component,
``Name.property`` for an inline nested object) → the model class whose fields
carry it. ``describe()`` reads the real classes (method signatures, dataclass
fields), so the table cannot claim what the code does not have;
``tests/sdk/test_sdk_contract.py`` compares it with ``openapi.json``.
Operations the platform has not published yet (receivers, splits,
payouts) are here too: more than ``openapi.json`` is allowed.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, NamedTuple

from . import models as m
from .client import AsyncPaycoreClient, PaycoreClient


class Operation(NamedTuple):
    http: str
    method: str
    params: dict[str, str]


OPERATIONS: dict[str, Operation] = {
    "createPayment": Operation("POST /v1/payments", "create_payment", {}),
    "findPayment": Operation("GET /v1/payments", "find_payment",
                             {"merchant_order_no": "merchant_order_no", "wait": "wait"}),
    "getPayment": Operation("GET /v1/payments/{id}", "get_payment", {"id": "payment_id", "wait": "wait"}),
    "cancelPayment": Operation("POST /v1/payments/{id}/cancel", "cancel_payment", {"id": "payment_id"}),
    "createRefund": Operation("POST /v1/payments/{id}/refunds", "create_refund", {"id": "payment_id"}),
    "getRefund": Operation("GET /v1/refunds/{id}", "get_refund", {"id": "refund_id"}),
    "getSettlement": Operation("GET /v1/settlements", "get_settlement", {"date": "date"}),
    "listSettlementLines": Operation("GET /v1/settlements/{date}/lines", "list_settlement_lines",
                                     {"date": "date", "cursor": "cursor"}),
    "getSettlementFile": Operation("GET /v1/settlements/{date}.csv", "download_settlement_file", {"date": "date"}),
    "createReceiver": Operation("POST /v1/receivers", "create_receiver", {}),
    "createSplit": Operation("POST /v1/payments/{id}/splits", "create_split", {"id": "payment_id"}),
    "getSplit": Operation("GET /v1/splits/{id}", "get_split", {"id": "split_id"}),
    "createPayout": Operation("POST /v1/payouts", "create_payout", {}),
    "getPayout": Operation("GET /v1/payouts/{id}", "get_payout", {"id": "payout_id"}),
    "findPayout": Operation("GET /v1/payouts", "find_payout", {"payout_no": "payout_no"}),
}

SCHEMAS: dict[str, type] = {
    # requests (every variant of the PaymentCreate oneOf is the one model)
    "PaymentCreate": m.PaymentCreate, "PaymentCreateScanned": m.PaymentCreate, "PaymentCreateNfc": m.PaymentCreate,
    "PaymentCreatePayer": m.PaymentCreate, "PaymentCreateWallet": m.PaymentCreate,
    "PaymentCreateOrder": m.PaymentCreate, "Nfc": m.Nfc, "Payer": m.Payer, "WalletPayer": m.Payer,
    "RefundCreate": m.RefundCreate,
    "ReceiverCreate": m.ReceiverCreate, "SplitCreate": m.SplitCreate, "SplitCreate.receivers": m.SplitReceiver,
    "PayoutCreate": m.PayoutCreate, "PayoutCreate.destination": m.PayoutDestination,
    # responses
    "Payment": m.Payment, "Payment.failure": m.Failure, "Payment.nfc": m.PaymentNfc,
    "Refund": m.Refund, "Refund.failure": m.Failure, "Event": m.Event, "SettlementEvent": m.Event,
    "Error": m.ErrorBody, "Error.error": m.ErrorDetail,
    "Settlement": m.Settlement, "Settlement.by_channel": m.SettlementChannel,
    "SettlementLines": m.SettlementLinesPage, "SettlementLines.lines": m.SettlementLine,
    "Receiver": m.Receiver, "Split": m.Split, "Split.receivers": m.SplitReceiverResult,
    "Split.receivers.failure": m.Failure,
    "Payout": m.Payout, "Payout.failure": m.Failure,
}


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def describe() -> dict[str, Any]:
    """What the code really offers, in the shape the conformance test reads:
    ``{"operations": {operationId: {"http", "method", "params": [API names]}},
    "schemas": {schema: [field names]}}``. An operation whose method is missing
    from either client, or a parameter missing from its signature, is left out."""
    ops: dict[str, Any] = {}
    for op_id, op in OPERATIONS.items():
        found = [getattr(cls, op.method, None) for cls in (PaycoreClient, AsyncPaycoreClient)]
        if not all(callable(f) for f in found):
            continue
        sigs = [inspect.signature(f).parameters for f in found]   # type: ignore[arg-type]
        params = [api for api, py in op.params.items() if all(py in s for s in sigs)]
        ops[op_id] = {"http": op.http, "method": op.method, "params": params}
    return {"operations": ops, "schemas": {name: _fields(cls) for name, cls in SCHEMAS.items()}}


#: webhooks of openapi.json → what verifies and reads them
WEBHOOKS: dict[str, str] = {"merchantEvent": "verify_webhook", "settlementClosed": "verify_webhook"}


def describe_all() -> dict[str, Any]:
    """``describe()`` plus the webhooks and the error codes with a typed exception."""
    from . import errors, webhooks
    out = describe()
    out["webhooks"] = [name for name, fn in WEBHOOKS.items() if callable(getattr(webhooks, fn, None))]
    out["error_codes"] = sorted(errors.ERRORS_BY_CODE)
    return out
