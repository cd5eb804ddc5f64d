"""The provider-neutral order operations the qqwallet, bankwallet and ecny
simulators share: open an order idempotently, settle a barcode payment by
scenario (22–25 included: a refund whose answer is lost and whose query
lags, a pay landing after the reverse, lagging queries, amounts one fen
short), reverse, close, refund, and the replay-protection nonce book. Each
simulator maps the outcome to its provider's own words.
"""
from __future__ import annotations

from simulators import kit as simkit
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings, SimState


class NonceBook:
    """Simulator side of replay protection: the nonces seen within the replay
    window (dict insertion order is time order, so pruning stops early)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.seen: dict[str, float] = {}

    def add(self, nonce: str, now: float) -> bool:
        cutoff = now - self.window
        while self.seen:
            first = next(iter(self.seen))
            if self.seen[first] >= cutoff:
                break
            del self.seen[first]
        if nonce in self.seen:
            return False
        self.seen[nonce] = now
        return True


def open_order(state: SimState, *, out_trade_no: str, amount: int, method: str, notify_url: str | None,
               mch_id: str, trade_no_prefix: str = "", auth_code: str | None = None,
               qr_code: str | None = None, prepay_id: str | None = None) -> tuple[SimOrder, bool]:
    """The order for ``out_trade_no``: the existing one (a repeated pay request,
    counted in ``pay_calls``) or a new one. Returns ``(order, created)``."""
    order = state.get(out_trade_no)
    if order is not None:
        order.pay_calls += 1
        return order, False
    order = SimOrder(out_trade_no=out_trade_no, amount=amount, method=method, notify_url=notify_url,
                     channel_trade_no=state.new_trade_no(trade_no_prefix),
                     scenario=Scenario.for_amount(amount), mch_id=mch_id, auth_code=auth_code,
                     qr_code=qr_code, prepay_id=prepay_id, pay_calls=1)
    return state.add(order), True


async def settle_barcode(state: SimState, settings: SimSettings, order: SimOrder) -> None:
    """Apply the scenario to a new barcode/wallet payment, send the
    notifications it triggers before the answer, and sleep past the
    platform's timeout in the SLOW scenario."""
    simkit.barcode_outcome(order)
    if order.scenario is Scenario.PAY_AFTER_REVERSE:
        # not on the books until late_pay_delay from now: a reverse meanwhile finds nothing
        del state.orders[order.out_trade_no]
        simkit.land_late(state, order)
    await state.barcode_notifications(order)
    await simkit.slow_if(order, settings)


def answers_system_error(order: SimOrder, created: bool) -> bool:
    """True when this (first) pay request must be answered with the
    provider's system error (the order was taken, or lands later)."""
    return created and simkit.answers_unknown(order)


def seen(state: SimState, order: SimOrder | None) -> SimOrder | None:
    """The order as a query sees it: None while QUERY_LAG hides it."""
    return None if order is None or state.lagging(order) else order


def reverse_order(order: SimOrder) -> bool:
    """Reverse (撤销) an order, paid or not; a paid one is returned to the
    payer. False when it cannot be (already refunded)."""
    order.reverse_calls += 1
    if order.state is OrderState.REFUND:
        return False
    order.state = OrderState.REVOKED
    return True


def close_order(order: SimOrder) -> bool:
    """Close an unpaid order. False when its state forbids it (paid, reversed,
    refunded); the simulator then answers with the real state."""
    if order.state in (OrderState.NOTPAY, OrderState.USERPAYING, OrderState.PAYERROR, OrderState.CLOSED):
        order.state = OrderState.CLOSED
        return True
    return False


#: why a refund is refused, provider-neutral
REFUND_DECLINED = "declined"       # the REFUND_DECLINED scenario
REFUND_NOT_PAID = "not_paid"       # the order holds no money
REFUND_EXCEEDS = "exceeds"         # more than what is left to refund


def refund_order(state: SimState, order: SimOrder, *, out_refund_no: str, amount: int,
                 refund_no_prefix: str = "", notify_url: str | None = None) -> SimRefund | str:
    """Refund ``amount`` of ``order`` (idempotent by ``out_refund_no``).

    Returns the refund, or one of ``REFUND_DECLINED``/``REFUND_NOT_PAID``/
    ``REFUND_EXCEEDS``. A refund notification goes to ``notify_url`` when the
    simulator sets ``state.refund_notify_builder``.
    """
    existing = order.refunds.get(out_refund_no)
    if existing is not None:
        return existing
    if order.scenario is Scenario.REFUND_DECLINED:
        return REFUND_DECLINED
    if order.state not in (OrderState.SUCCESS, OrderState.REFUND):
        return REFUND_NOT_PAID
    if amount <= 0 or order.refunded + amount > order.amount:
        return REFUND_EXCEEDS
    refund = SimRefund(out_refund_no=out_refund_no, amount=amount,
                       channel_refund_no=state.new_trade_no(refund_no_prefix),
                       extra={"notify_url": notify_url or order.notify_url})
    order.refunds[out_refund_no] = refund
    order.state = OrderState.REFUND
    if simkit.delay_refund(state, order, refund):
        refund.extra["answer_lost"] = True   # the simulator answers its system error
    elif notify_url or order.notify_url:
        state.notify(order, refund)
    return refund


def answer_lost(refund: SimRefund) -> bool:
    """REFUND_DELAYED: the first answer to this refund is the provider's system error."""
    return bool(refund.extra.pop("answer_lost", False))


def find_refund(state: SimState, out_refund_no: str) -> tuple[SimOrder, SimRefund] | None:
    for order in state.orders.values():
        refund = order.refunds.get(out_refund_no)
        if refund is not None:
            return (order, refund) if simkit.refund_visible(refund) else None
    return None
