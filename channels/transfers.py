"""Money after the payment: the channel-side types of profit sharing (分账) and payouts (转账/代付).

Same rules as :mod:`channels.base`: amounts are ``int`` fen, declines are
data (a result with a FAILED status and the provider's code), faults are
:class:`~channels.base.ChannelError` (``retriable`` when the outcome is
unknown), a flow the provider lacks raises :class:`~channels.base.UnsupportedFlow`.

A person's real name travels only inside these requests; their ``repr``
never shows it, so no log line or traceback can print it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ShareStatus(enum.StrEnum):
    """A profit-sharing order, or one receiver's part of it, normalised."""

    PROCESSING = "PROCESSING"    # accepted, not yet done (WeChat PROCESSING/PENDING, Alipay PROCESSING)
    SUCCEEDED = "SUCCEEDED"      # the money moved (WeChat FINISHED/SUCCESS, Alipay SUCCESS)
    FAILED = "FAILED"            # nothing moved for this part (WeChat CLOSED, Alipay FAIL), or a decline
    NOT_FOUND = "NOT_FOUND"      # the provider has no such order: never proof the request did not arrive


class PayoutStatus(enum.StrEnum):
    PROCESSING = "PROCESSING"    # accepted / transferring / waiting for the payee: keep querying
    SUCCEEDED = "SUCCEEDED"      # credited to the payee
    FAILED = "FAILED"            # refused or cancelled, no money left the merchant
    RETURNED = "RETURNED"        # credited, then bounced back (退票): the money is the merchant's again
    NOT_FOUND = "NOT_FOUND"      # the provider has no such transfer


def mask_name(name: str | None) -> str | None:
    """``张三丰`` → ``张**``: what may be shown back or logged of a real name."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)


@dataclass(slots=True)
class ReceiverSpec:
    """A receiver to bind at the channel: ``type`` is paycore's (merchant | openid | user_id | account)."""

    type: str
    account: str
    name: str | None = field(default=None, repr=False)
    relation: str = "PARTNER"             # WeChat relation_type: what the receiver is to the merchant
    sub_mch_id: str | None = None

    def __repr__(self) -> str:
        return f"ReceiverSpec(type={self.type!r}, account={self.account!r}, name={mask_name(self.name)!r})"


@dataclass(slots=True)
class BindResult:
    ok: bool
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(slots=True)
class ShareLine:
    """One receiver's part of a profit-sharing order."""

    type: str
    account: str
    amount: int
    description: str
    name: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class ShareRequest:
    """One profit-sharing order (WeChat 请求分账 / Alipay 统一收单交易结算).

    ``out_order_no`` is the paycore split id (``spl_…``); the provider dedupes
    on it, so the same request may be sent again after an unknown outcome.
    ``lines`` empty with ``finish`` True is "release the rest to the merchant"
    (WeChat 解冻剩余资金 / Alipay 分账完结)."""

    out_order_no: str
    out_trade_no: str
    channel_trade_no: str | None
    total_amount: int
    lines: list[ShareLine]
    finish: bool
    sub_mch_id: str | None = None


@dataclass(slots=True)
class LineResult:
    account: str
    amount: int
    status: ShareStatus
    failure_code: str | None = None


def overall(finished: bool, lines: list[LineResult]) -> ShareStatus:
    """A finished order SUCCEEDED when any of its parts moved money, FAILED when none did;
    PROCESSING while the provider is not finished or any part is still pending."""
    if not finished or any(line.status is ShareStatus.PROCESSING for line in lines):
        return ShareStatus.PROCESSING
    if lines and all(line.status is ShareStatus.FAILED for line in lines):
        return ShareStatus.FAILED
    return ShareStatus.SUCCEEDED


@dataclass(slots=True)
class ShareResult:
    status: ShareStatus
    channel_order_no: str | None = None
    lines: list[LineResult] = field(default_factory=list)
    failure_code: str | None = None       # a decline of the whole order (NOT_ENOUGH, …)
    failure_message: str | None = None


@dataclass(slots=True)
class ShareReturnRequest:
    """Give one receiver's share back to the merchant (WeChat 请求分账回退) before a refund."""

    out_return_no: str
    out_order_no: str                     # the split it comes from
    channel_order_no: str | None
    account: str                          # the receiver the money comes back from (a merchant id)
    amount: int
    description: str
    sub_mch_id: str | None = None


@dataclass(slots=True)
class ShareReturnResult:
    status: ShareStatus
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(slots=True)
class PayoutRequest:
    """One transfer to a person or account. ``out_no`` is the paycore payout id (``po_…``): the
    provider dedupes on it, so after an unknown outcome the same request may be sent again."""

    out_no: str
    amount: int
    destination_type: str                 # openid | user_id | account
    account: str
    remark: str
    name: str | None = field(default=None, repr=False)
    notify_url: str | None = None

    def __repr__(self) -> str:
        return (f"PayoutRequest(out_no={self.out_no!r}, amount={self.amount}, type={self.destination_type!r}, "
                f"account={self.account!r}, name={mask_name(self.name)!r})")


@dataclass(slots=True)
class PayoutResult:
    status: PayoutStatus
    channel_payout_no: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(slots=True)
class PayoutNotice:
    """A verified payout notification: the provider's word on one transfer, to be applied exactly
    as the answer of a query (``result``) would be."""

    out_no: str                           # the paycore payout id, mapped back
    merchant_ref: str | None              # the provider-side merchant id it names
    amount: int | None                    # fen, as the provider states it
    result: PayoutResult
    notification_id: str | None = None
