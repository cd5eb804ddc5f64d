"""Scenario checks every barcode channel passes, against its simulator over real HTTP.

The engine-facing behaviour is the same for every barcode channel (the
simulators' scenarios go by ``amount % 100``), only the wire differs;
``tests/channels/test_barcode_scenarios.py`` calls these with a :class:`SimPair`
and each channel's own specifics (its barcode, its failure codes), one row a
channel in its table:

    @channels()
    async def test_declined_is_failed_with_the_channels_code(channel: Channel, pair: SimPair) -> None:
        await check_declined(pair, channel.code, channel.declined)
"""
from __future__ import annotations

import dataclasses
from datetime import date
from typing import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from paycore.runtime import LISTEN_BACKLOG

from channels.base import ChannelError, Method, Notification, RefundRequest, RefundStatus, TradeRef, TradeStatus
from channels.client import ProviderClient
from channels.http import ChannelHttp
from tests.support.simpair import SimPair, free_port
from tests.support.helpers import business_today

REASON = "customer returned goods"


def ref(req) -> TradeRef:
    return TradeRef(req.out_trade_no, req.amount, req.method, created_at=req.created_at)


def refund_req(pair: SimPair, req, amount: int, n: int = 1, reason: str | None = REASON) -> RefundRequest:
    return RefundRequest(f"rfd_{req.out_trade_no[4:-1]}{n}", req.out_trade_no, None, req.amount, amount,
                         reason, pair.notify_url("refund"))


async def barcode(pair: SimPair, amount: int, code: str):
    req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=code)
    return req, await pair.adapter.pay(req)


async def set_fault(pair: SimPair, mode: str | None) -> None:
    async with aiohttp.ClientSession() as s:
        await s.post(f"{pair.base_url}/_sim/fault", json={"mode": mode})


# -- barcode ----------------------------------------------------------------------
async def check_barcode_success(pair: SimPair, code: str, *, paid_at: bool = True) -> None:
    """Paid at once; ``paid_at``: the answer says when (Bestpay's does not)."""
    req, res = await barcode(pair, 1000, code)
    assert res.status is TradeStatus.SUCCEEDED and res.amount == 1000 and res.channel_trade_no
    assert (res.paid_at is not None) or not paid_at
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.SUCCEEDED
    assert (await pair.sim_order(req.out_trade_no))["pay_calls"] == 1


async def check_userpaying_then_success(pair: SimPair, code: str, failure_code: str | None = None):
    """USERPAYING (11): processing, and the third query finds it paid. Returns the request."""
    req, res = await barcode(pair, 1011, code)
    assert res.status is TradeStatus.PROCESSING
    if failure_code is not None:
        assert res.failure_code == failure_code
    seen = [(await pair.adapter.query(ref(req))).status for _ in range(3)]
    assert seen == [TradeStatus.PROCESSING, TradeStatus.PROCESSING, TradeStatus.SUCCEEDED]
    return req


async def check_userpaying_forever_then_reverse(pair: SimPair, code: str) -> None:
    req, res = await barcode(pair, 1012, code)
    assert res.status is TradeStatus.PROCESSING
    for _ in range(4):
        assert (await pair.adapter.query(ref(req))).status is TradeStatus.PROCESSING
    rev = await pair.adapter.reverse(ref(req))
    assert rev.status is TradeStatus.REVERSED and not rev.retry
    assert (await pair.adapter.reverse(ref(req))).status is TradeStatus.REVERSED   # repeatable
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.REVERSED


async def check_declined(pair: SimPair, code: str, failure_code: str) -> None:
    req, res = await barcode(pair, 1013, code)
    assert res.status is TradeStatus.FAILED and res.failure_code == failure_code
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.FAILED


async def check_unknown_outcome_then_query(pair: SimPair, code: str, amount: int, kind: str,
                                           found: TradeStatus = TradeStatus.SUCCEEDED) -> None:
    """System error (14/19) or a slow answer (15): retriable, and a query finds the truth."""
    req = pair.pay_request(amount=amount, method=Method.BARCODE, auth_code=code)
    with pytest.raises(ChannelError) as e:
        await pair.adapter.pay(req)
    assert e.value.retriable and e.value.kind == kind
    assert (await pair.adapter.query(ref(req))).status is found


async def check_not_found(pair: SimPair, code: str) -> None:
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=code)
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.NOT_FOUND


# -- notifications ------------------------------------------------------------------
async def check_duplicate_notifications(pair: SimPair, code: str, amount: int = 1016, copies: int = 3) -> None:
    """DUPLICATE_NOTIFY (16) sends ``copies`` notifications; they all parse to one result."""
    req, res = await barcode(pair, amount, code)
    assert res.status is TradeStatus.SUCCEEDED
    notes = [await pair.next_notification() for _ in range(copies)]
    assert all(isinstance(n, Notification) for n in notes)
    seen = {(n.out_trade_no, n.amount, n.payment.status, n.notification_id) for n in notes}  # type: ignore
    assert seen == {(req.out_trade_no, amount, TradeStatus.SUCCEEDED, notes[0].notification_id)}


async def check_out_of_order_notification(pair: SimPair, code: str) -> None:
    req, res = await barcode(pair, 1017, code)
    assert pair.notifications, "the notification came before the synchronous answer"
    assert res.status is TradeStatus.SUCCEEDED
    late = await pair.next_notification()
    assert isinstance(late, Notification) and late.out_trade_no == req.out_trade_no


async def check_qr_paid_by_customer(pair: SimPair, amount: int):
    """A QR order stays pending until the customer scans and pays; then a payment
    notification arrives. Returns the request."""
    req = pair.pay_request(amount=amount, method=Method.QR)
    res = await pair.adapter.pay(req)
    assert res.status is TradeStatus.PENDING and res.qr_code
    assert (await pair.adapter.query(ref(req))).status is TradeStatus.PENDING
    await pair.customer_pays(qr_code=res.qr_code)
    note = await pair.next_notification()
    assert isinstance(note, Notification) and note.payment is not None
    assert (note.kind, note.out_trade_no, note.amount) == ("payment", req.out_trade_no, amount)
    assert note.payment.status is TradeStatus.SUCCEEDED and note.merchant_ref == pair.adapter.settings.mch_id
    return req


# -- refunds and statements -----------------------------------------------------------
async def check_refunds(pair: SimPair, code: str, over_refund_code: str) -> None:
    req, _ = await barcode(pair, 1000, code)
    part = refund_req(pair, req, 300, 1)
    assert (await pair.adapter.refund(part)).status is RefundStatus.SUCCEEDED
    assert (await pair.adapter.refund(part)).status is RefundStatus.SUCCEEDED   # same refund again: no double
    rest = refund_req(pair, req, 700, 2)
    assert (await pair.adapter.refund(rest)).status is RefundStatus.SUCCEEDED
    assert (await pair.sim_order(req.out_trade_no))["refunded"] == 1000
    over = await pair.adapter.refund(refund_req(pair, req, 1, 3))
    assert over.status is RefundStatus.FAILED and over.failure_code == over_refund_code
    notes = [await pair.next_notification() for _ in range(2)]
    assert {(n.out_refund_no, n.amount) for n in notes} == {(part.out_refund_no, 300), (rest.out_refund_no, 700)}
    assert all(n.kind == "refund" and n.refund.status is RefundStatus.SUCCEEDED for n in notes)

    full_req, _ = await barcode(pair, 500, code)
    assert (await pair.adapter.refund(refund_req(pair, full_req, 500))).status is RefundStatus.SUCCEEDED
    assert (await pair.adapter.query(ref(full_req))).status is TradeStatus.SUCCEEDED   # paid, then refunded


async def check_refunds_in_statement(pair: SimPair, code: str, *, paid: tuple[int, int], refunded: tuple[int, int],
                                     over: int, over_code: str | None = None,
                                     answered: RefundStatus = RefundStatus.SUCCEEDED, notified: bool = True,
                                     reason: str | None = REASON):
    """Pay two orders; refund the first in full and the second in part (each
    answered ``answered``, then queried as succeeded, and notified if
    ``notified``); refunding ``over`` more of the second fails; the day's
    statement lists exactly the two payments and the two refunds.
    Returns the two payment requests."""
    reqs = []
    for amount in paid:
        req, res = await barcode(pair, amount, code)
        assert res.status is TradeStatus.SUCCEEDED
        reqs.append(req)
    refunds = [refund_req(pair, req, amount, reason=reason) for req, amount in zip(reqs, refunded)]
    for rr in refunds:
        got = await pair.adapter.refund(rr)
        assert got.status is answered and got.channel_refund_no
        assert (await pair.adapter.query_refund(rr)).status is RefundStatus.SUCCEEDED
        if notified:
            note = await pair.next_notification()
            assert isinstance(note, Notification) and note.kind == "refund" and note.refund is not None
            assert (note.out_refund_no, note.amount, note.refund.status) == (
                rr.out_refund_no, rr.refund_amount, RefundStatus.SUCCEEDED)
    too_much = await pair.adapter.refund(refund_req(pair, reqs[1], over, 2, reason=reason))
    assert too_much.status is RefundStatus.FAILED
    if over_code is not None:
        assert too_much.failure_code == over_code
    assert (await pair.adapter.query(ref(reqs[0]))).status is TradeStatus.SUCCEEDED   # paid, then refunded

    lines = await pair.adapter.statement(business_today())
    assert {(ln.out_trade_no, ln.amount) for ln in lines if ln.kind == "payment"} == {
        (req.out_trade_no, req.amount) for req in reqs}
    assert {(ln.out_refund_no, ln.amount) for ln in lines if ln.kind == "refund"} == {
        (rr.out_refund_no, rr.refund_amount) for rr in refunds}
    return reqs


async def check_refund_declined(pair: SimPair, code: str, failure_code: str, amount: int = 100) -> None:
    """REFUND_DECLINED (18): the payment succeeds, refunding ``amount`` of it fails."""
    req, res = await barcode(pair, 1018, code)
    assert res.status is TradeStatus.SUCCEEDED
    got = await pair.adapter.refund(refund_req(pair, req, amount))
    assert got.status is RefundStatus.FAILED and got.failure_code == failure_code


async def check_statement(pair: SimPair, code: str) -> None:
    a, _ = await barcode(pair, 1200, code)
    b, _ = await barcode(pair, 800, code)
    await barcode(pair, 1013, code)   # declined: not in the statement
    r = refund_req(pair, a, 200)
    await pair.adapter.refund(r)
    lines = await pair.adapter.statement(business_today())
    got = {(ln.kind, ln.out_trade_no, ln.out_refund_no, ln.amount, ln.status) for ln in lines}
    assert got == {("payment", a.out_trade_no, None, 1200, "SUCCEEDED"),
                   ("payment", b.out_trade_no, None, 800, "SUCCEEDED"),
                   ("refund", a.out_trade_no, r.out_refund_no, 200, "REFUNDED")}


async def check_empty_statement(pair: SimPair) -> None:
    assert await pair.adapter.statement(date(2001, 1, 1)) == []


# -- faults ---------------------------------------------------------------------------
async def check_faults_are_retriable(pair: SimPair, code: str,
                                     faults: tuple[tuple[str, str], ...] = (("http500", "http_5xx"),
                                                                            ("garbage", "garbage")),
                                     *, query: bool = False) -> None:
    """Each simulator fault ``mode`` makes a pay (or, with ``query``, a query of
    one order) fail as a retriable ChannelError of ``kind``."""
    req = pair.pay_request(amount=100, method=Method.BARCODE, auth_code=code)
    for mode, kind in faults:
        await set_fault(pair, mode)
        with pytest.raises(ChannelError) as e:
            if query:
                await pair.adapter.query(ref(req))
            else:
                await barcode(pair, 100, code)
        assert e.value.retriable and e.value.kind == kind


async def serve(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> tuple[web.AppRunner, str]:
    """A stand-in gateway on loopback (a man in the middle); returns its runner and base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=LISTEN_BACKLOG).start()
    return runner, f"http://127.0.0.1:{port}"


async def check_forged_answer_is_rejected(pair: SimPair, code: str,
                                          routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                                          ) -> None:
    """A man in the middle (``routes``, :func:`serve`) answers a barcode pay without the
    provider's key: the pair's adapter, sent there, rejects the answer as a
    retriable ``bad_signature``."""
    runner, url = await serve(routes)
    try:
        settings = dataclasses.replace(pair.adapter.settings, base_url=url)
        async with ProviderClient() as session:
            adapter = type(pair.adapter)(settings, ChannelHttp(session, pair.name, 2.0))
            with pytest.raises(ChannelError) as e:
                await adapter.pay(pair.pay_request(amount=100, method=Method.BARCODE, auth_code=code))
        assert e.value.retriable and e.value.kind == "bad_signature"
    finally:
        await runner.cleanup()
