"""Typed request and response models (immutable dataclasses).

Field names are the wire names of api.md / openapi.json. Money is always an
integer number of fen: request models refuse floats (and bools). Response
models ignore fields they do not know yet, so a newer platform never breaks an
older client; times are parsed into timezone-aware ``datetime``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T", bound="_Model")

FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CLOSED", "REVERSED"})


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    return value


def _convert(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value) if len(args) == 1 else value
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_convert(item, v) for v in value]
    if isinstance(tp, type) and issubclass(tp, _Model):
        return tp.from_dict(value)
    if tp is datetime:
        return _parse_time(value)
    return value


class _Model:
    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        hints = typing.get_type_hints(cls)
        kwargs = {f.name: _convert(hints[f.name], data[f.name])
                  for f in dataclasses.fields(cls) if f.init and f.name in data}   # type: ignore[arg-type]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body: unset (``None``) fields are left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):   # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, _Model):
                v = v.to_dict()
            elif isinstance(v, list):
                v = [x.to_dict() if isinstance(x, _Model) else x for x in v]
            elif isinstance(v, datetime):
                v = v.isoformat()
            out[f.name] = v
        return out


def _fen(name: str, value: Any, *, positive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of fen, not {type(value).__name__}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0 fen")


# ----------------------------------------------------------------------------- requests
Method = Literal["barcode", "qr", "nfc", "jsapi", "h5", "app", "wallet", "sonic"]


@dataclass(frozen=True)
class Nfc(_Model):
    """A contactless tap: a network token (DPAN), never a real card number."""
    token: str
    expiry: str
    cryptogram: str
    wallet: str | None = None
    emv_data: str | None = None


@dataclass(frozen=True)
class Payer(_Model):
    openid: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class PaymentCreate(_Model):
    """``POST /v1/payments``. ``merchant_order_no`` is the idempotency key."""
    merchant_order_no: str
    amount: int
    method: Method
    currency: str = "CNY"
    channel: str | None = None
    auth_code: str | None = None
    nfc: Nfc | None = None
    payer: Payer | None = None
    subject: str | None = None
    store_id: str | None = None
    terminal_id: str | None = None
    notify_url: str | None = None
    expire_in: int | None = None
    metadata: dict[str, Any] | None = None
    profit_sharing: bool | None = None

    def __post_init__(self) -> None:
        _fen("amount", self.amount)


@dataclass(frozen=True)
class RefundCreate(_Model):
    """``POST /v1/payments/{id}/refunds``. ``refund_no`` is the idempotency key."""
    refund_no: str
    amount: int
    reason: str | None = None

    def __post_init__(self) -> None:
        _fen("amount", self.amount)


@dataclass(frozen=True)
class ReceiverCreate(_Model):
    receiver_no: str
    channel: str
    type: Literal["merchant", "openid", "user_id", "account"]
    account: str
    name: str | None = None


@dataclass(frozen=True)
class SplitReceiver(_Model):
    receiver_id: str
    amount: int
    description: str

    def __post_init__(self) -> None:
        _fen("amount", self.amount)


@dataclass(frozen=True)
class SplitCreate(_Model):
    """``POST /v1/payments/{id}/splits``. ``split_no`` is the idempotency key."""
    split_no: str
    receivers: list[SplitReceiver]
    finish: bool


@dataclass(frozen=True)
class PayoutDestination(_Model):
    type: Literal["openid", "user_id", "account"]
    value: str
    name: str | None = None


@dataclass(frozen=True)
class PayoutCreate(_Model):
    """``POST /v1/payouts``. ``payout_no`` is the idempotency key."""
    payout_no: str
    amount: int
    channel: str
    destination: PayoutDestination
    currency: str = "CNY"
    remark: str | None = None
    notify_url: str | None = None

    def __post_init__(self) -> None:
        _fen("amount", self.amount)


# ----------------------------------------------------------------------------- responses
@dataclass(frozen=True)
class Failure(_Model):
    code: str
    message: str
    channel_code: str | None = None


@dataclass(frozen=True)
class PaymentNfc(_Model):
    """The tap as stored: the token masked (first 6, last 4)."""
    token: str | None = None
    wallet: str | None = None


@dataclass(frozen=True)
class Payment(_Model):
    id: str
    merchant_id: str
    merchant_order_no: str
    amount: int
    currency: str
    method: str
    channel: str
    status: Literal["PENDING", "PROCESSING", "SUCCEEDED", "FAILED", "CLOSED", "REVERSED"]
    channel_trade_no: str | None = None
    qr_code: str | None = None
    pay_params: dict[str, Any] | None = None
    refunded_amount: int = 0
    failure: Failure | None = None
    subject: str | None = None
    store_id: str | None = None
    terminal_id: str | None = None
    wallet: str | None = None
    nfc: PaymentNfc | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    paid_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    fee: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Refund(_Model):
    id: str
    payment_id: str
    refund_no: str
    amount: int
    status: Literal["PROCESSING", "SUCCEEDED", "FAILED"]
    reason: str | None = None
    channel_refund_no: str | None = None
    failure: Failure | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Event(_Model):
    """A journal event, as POSTed to ``notify_url`` (``payment``, and ``refund`` for refund events), or a
    ``settlement.closed`` to the merchant's webhook URL (``settlement``, no payment)."""
    event_id: str
    type: str
    seq: int
    occurred_at: datetime
    payment: Payment | None = None
    refund: Refund | None = None
    settlement: Settlement | None = None


@dataclass(frozen=True)
class ErrorDetail(_Model):
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class ErrorBody(_Model):
    error: ErrorDetail


@dataclass(frozen=True)
class SettlementChannel(_Model):
    channel: str
    count: int
    gross: int
    refunds: int
    fees: int
    net: int


@dataclass(frozen=True)
class Settlement(_Model):
    merchant_id: str
    date: str
    status: Literal["OPEN", "CLOSED"]
    count: int
    gross: int
    refunds: int
    fees: int
    adjustments: int
    net: int
    by_channel: list[SettlementChannel] = field(default_factory=list)
    file_sha256: str | None = None


@dataclass(frozen=True)
class SettlementLine(_Model):
    kind: Literal["payment", "refund", "adjustment"]
    id: str
    channel: str
    amount: int
    fee: int
    net: int
    occurred_at: datetime
    original_date: str | None = None


@dataclass(frozen=True)
class SettlementLinesPage(_Model):
    lines: list[SettlementLine]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Receiver(_Model):
    id: str
    receiver_no: str
    channel: str
    type: str
    account: str
    status: str
    name: str | None = None


@dataclass(frozen=True)
class SplitReceiverResult(_Model):
    receiver_id: str
    amount: int
    status: str
    failure: Failure | None = None


@dataclass(frozen=True)
class Split(_Model):
    id: str
    payment_id: str
    split_no: str
    status: Literal["PROCESSING", "SUCCEEDED", "FAILED"]
    receivers: list[SplitReceiverResult] = field(default_factory=list)


@dataclass(frozen=True)
class Payout(_Model):
    id: str
    payout_no: str
    amount: int
    channel: str
    status: Literal["PROCESSING", "SUCCEEDED", "FAILED", "RETURNED"]
    failure: Failure | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
