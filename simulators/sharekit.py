"""The providers' books of profit sharing and transfers, shared by the simulators.

:class:`ShareBook` holds bound receivers, profit-sharing orders per paid
order (what was shared, returned, whether the rest was released) and
transfers; a simulator maps its own wire format onto it.

Scenarios (the provider's failure cases):

* a share above what is left of the order (``max_share_percent`` of its
  amount, WeChat's default 30 %, less refunds and earlier shares) → refused
  NOT_ENOUGH; a receiver never bound → its part CLOSED (NO_RELATION);
* a share line whose amount ends in 14 → recorded, then answered with a
  system error (the outcome is unknown to the caller; a query finds it);
* transfers by ``amount % 100`` (:class:`simulators.kit.Scenario`): 13 →
  refused (the merchant's balance is short), 14 → recorded and succeeded but
  answered with a system error, 15 → answered after ``slow_seconds``, 19 →
  recorded and failed but answered with a system error; to an account whose
  id contains ``frozen`` → accepted, then FAIL (ACCOUNT_FROZEN); a payee name
  ``不符`` → accepted, then FAIL (NAME_NOT_CORRECT); otherwise accepted and
  SUCCESS ``transfer_delay`` seconds later (default 0.05).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from aiohttp import web

from simulators.kit import Scenario, SimOrder


@dataclass
class SimShare:
    out_order_no: str
    order: SimOrder
    order_id: str
    lines: list[dict[str, Any]]          # {type, account, amount, description, result, fail_reason}
    unfreeze: bool = False               # the release of the rest to the merchant itself
    finishes: bool = False               # no more sharing of this order afterwards
    state: str = "PROCESSING"            # PROCESSING | FINISHED


@dataclass
class SimReturn:
    out_return_no: str
    share: SimShare
    account: str
    amount: int
    return_id: str
    result: str = "SUCCESS"
    fail_reason: str | None = None


@dataclass
class SimTransfer:
    out_no: str
    amount: int
    account: str
    bill_no: str
    state: str = "ACCEPTED"              # ACCEPTED | WAIT_USER_CONFIRM | SUCCESS | FAIL
    fail_reason: str | None = None
    name: str | None = None
    notify_url: str | None = None
    queries: int = 0                     # how often the merchant asked about it
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    extra: dict[str, Any] = field(default_factory=dict)


class ShareBook:
    """One provider's book (``app[BOOK_KEY]``, for tests that play the provider's operator)."""

    def __init__(self, max_share_percent: int = 30) -> None:
        self.max_share_percent = max_share_percent
        self.receivers: set[tuple[str, str]] = set()
        self.shares: dict[str, SimShare] = {}
        self.returns: dict[str, SimReturn] = {}
        self.transfers: dict[str, SimTransfer] = {}
        self.transfer_calls = 0
        #: False: the provider's transfer notifications are lost (as happens), only queries tell
        self.notify_transfers = True
        #: the simulator's (url, headers, body) of a transfer's notification: for a test that plays
        #: someone replaying or forging one
        self.transfer_notice: Callable[[SimTransfer], tuple[str, dict[str, str], bytes]] | None = None

    def shares_of(self, order: SimOrder) -> list[SimShare]:
        return [s for s in self.shares.values() if s.order is order]

    def shared(self, order: SimOrder) -> int:
        """What left the merchant to receivers (not counting the release to the merchant itself)."""
        out = sum(line["amount"] for s in self.shares_of(order) if not s.unfreeze for line in s.lines
                  if line["result"] != "CLOSED")
        back = sum(r.amount for r in self.returns.values() if r.share.order is order and r.result == "SUCCESS")
        return out - back

    def shareable(self, order: SimOrder) -> int:
        return order.amount * self.max_share_percent // 100 - self.shared(order) - order.refunded

    def finished(self, order: SimOrder) -> bool:
        return any(s.finishes for s in self.shares_of(order))

    @staticmethod
    def system_error_line(lines: list[dict[str, Any]]) -> bool:
        return any(Scenario.for_amount(int(line["amount"])) is Scenario.SYSTEM_ERROR for line in lines)

    def transfer_outcome(self, t: SimTransfer) -> None:
        """Where the transfer ends (applied when it completes)."""
        sc = Scenario.for_amount(t.amount)
        if "frozen" in t.account:
            t.extra["ends"] = ("FAIL", "ACCOUNT_FROZEN")
        elif t.name == "不符":
            t.extra["ends"] = ("FAIL", "NAME_NOT_CORRECT")
        elif sc is Scenario.SYSTEM_ERROR_THEN_FAILED:
            t.extra["ends"] = ("FAIL", "BANK_CARD_STATUS_ABNORMAL")
        else:
            t.extra["ends"] = ("SUCCESS", None)

    @staticmethod
    def complete(t: SimTransfer) -> None:
        t.state, t.fail_reason = t.extra.get("ends", ("SUCCESS", None))


BOOK_KEY: web.AppKey[ShareBook] = web.AppKey("sharebook", ShareBook)
