"""The payment engine: create, read, wait, cancel, refund, notifications, recovery.

Every status change goes through ``_change``: copy the payment, let a
decision function mutate it through the state machine, commit it with its
event in the journal guarded by ``seq``; on a stale row reload and decide
again. A payment is committed *before* its channel is called, so a crash
mid-call leaves a PROCESSING row the recovery loop resolves.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

import asyncpg

from channels.base import (ChannelAdapter, ChannelError, ChannelResult, Flow, Method, Notification,
                           NotificationRejected, PayRequest, RefundRequest, RefundResult, RefundStatus, TradeRef,
                           TradeStatus, UnsupportedFlow)
from paycore.metrics import Metrics
from paycore.merchants.auth import Merchant
from paycore.core.breaker import Breaker
from paycore.config import Config
from paycore.errors import (AmountLimitExceeded, ChannelFault, ChannelUnavailable, IdempotencyConflict,
                            InvalidRequest, InvalidState, NotFound, RefundExceedsAmount, Stale, Unavailable,
                            UnsupportedMethod)
from paycore.core.journal import (DB_DOWN, Change, Journal, load_payment, load_payment_by_order, load_refund,
                             load_refund_by_no)
from paycore.core.models import Payment, Refund, RefundState, Status, event_payload, new_id, now
from paycore.core.routing import Router
from paycore.core.validation import CreatePayment, CreateRefund

log = logging.getLogger("paycore.engine")

#: methods whose payment is taken at once (the customer is present with a code or card)
IMMEDIATE = frozenset({Method.BARCODE, Method.SONIC, Method.NFC, Method.WALLET})

def wire_method(m: Method) -> Method:
    """What the channel is asked for: a sonic code is a payment code delivered by sound."""
    return Method.BARCODE if m is Method.SONIC else m


Decision = Callable[[Payment], "tuple[str | None, Refund | None, bool] | None"]


class Engine:
    def __init__(self, cfg: Config, pool: asyncpg.Pool, journal: Journal, adapters: dict[str, ChannelAdapter],
                 breakers: dict[str, Breaker], router: Router, metrics: Metrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.pool = pool
        self.journal = journal
        self.adapters = adapters
        self.breakers = breakers
        self.router = router
        self.notify_base = cfg.server.public_base_url.rstrip("/")
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task | None = None
        # profit sharing (issue 16, paycore.core.splits): set by the app; takes shares back before a
        # refund where the channel requires it. None: no split can exist.
        self.before_refund: Callable[[Payment, Refund], Awaitable[tuple[str, str] | None]] | None = None

    # ------------------------------------------------------------------ reads
    async def _db(self, coro):
        try:
            return await coro
        except DB_DOWN as e:
            raise Unavailable("database unavailable") from e

    async def get_payment(self, merchant: Merchant, payment_id: str) -> Payment:
        p = await self._db(load_payment(self.pool, payment_id))
        if p is None or p.merchant_id != merchant.id:
            raise NotFound("no such payment")
        return p

    async def get_payment_by_order(self, merchant: Merchant, order_no: str) -> Payment:
        p = await self._db(load_payment_by_order(self.pool, merchant.id, order_no))
        if p is None:
            raise NotFound("no such payment")
        return p

    async def get_refund(self, merchant: Merchant, refund_id: str) -> Refund:
        r = await self._db(load_refund(self.pool, refund_id))
        if r is None or r.merchant_id != merchant.id:
            raise NotFound("no such refund")
        return r

    # ------------------------------------------------------------ the journal
    async def _commit(self, change: Change) -> bool:
        ok = await self.journal.commit(change)
        if ok and change.event is not None:
            self._wake(change.payment.id)
        return ok

    def _event(self, p: Payment, etype: str, at: datetime, refund: Refund | None = None):
        eid = new_id("evt")
        return (eid, etype, event_payload(eid, etype, p, at, refund), at)

    async def _change(self, p: Payment, decide: Decision, attempts: int = 8) -> Payment:
        """Apply ``decide`` to a copy of ``p`` and commit; on a stale row reload and retry.

        ``decide`` mutates the copy and returns (event type or None, refund or
        None, refund_insert) — or None for "nothing to do"."""
        for _ in range(attempts):
            new = dataclasses.replace(p, pay_params=p.pay_params, metadata=p.metadata)
            out = decide(new)
            if out is None:
                return p
            etype, refund, refund_insert = out
            at = new.updated_at
            event = self._event(new, etype, at, refund) if etype else None
            if await self._commit(Change(new, p.seq, event, refund, refund_insert)):
                if etype and new.status.final and etype.startswith("payment."):
                    self.metrics.payments_final.labels(new.channel, str(new.method), str(new.status)).inc()
                return new
            fresh = await self._db(load_payment(self.pool, p.id))
            if fresh is None:
                raise NotFound("no such payment")
            p = fresh
        raise Stale(f"payment {p.id} kept changing")

    # --------------------------------------------------------------- creating
    def adapter_for(self, channel: str) -> ChannelAdapter:
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise ChannelUnavailable(f"channel {channel} is not configured", field="channel")
        return adapter

    async def create_payment(self, merchant: Merchant, req: CreatePayment) -> tuple[Payment, bool]:
        channel = self.router.route(req.method, req.channel, req.auth_code, req.nfc.wallet if req.nfc else None)
        adapter = self.adapter_for(channel)
        if req.method not in adapter.methods and not (req.method is Method.SONIC and Method.BARCODE in adapter.methods):
            raise UnsupportedMethod(f"{channel} does not support method {req.method}", field="method")
        limit = merchant.max_amount or self.cfg.payments.default_max_amount
        if req.amount > limit:
            raise AmountLimitExceeded(f"amount exceeds this merchant's limit of {limit} fen", field="amount")
        if req.method is Method.WALLET and "user_id" not in (req.payer or {}):
            raise InvalidRequest("payer.user_id is required for wallet payments", field="payer")
        if req.method is Method.JSAPI and not req.payer:
            raise InvalidRequest("payer is required for jsapi payments", field="payer")

        at = now()
        immediate = req.method in IMMEDIATE
        expire_in = req.expire_in or self.cfg.payments.default_expire_in
        rule = adapter.settings.recovery
        p = Payment(
            id=new_id("pay"), merchant_id=merchant.id, merchant_order_no=req.merchant_order_no,
            fingerprint=req.fingerprint, amount=req.amount, currency=req.currency, method=req.method,
            channel=channel, status=Status.PROCESSING if immediate else Status.PENDING,
            expire_at=at + timedelta(seconds=expire_in), created_at=at, updated_at=at, seq=1,
            subject=req.subject, store_id=req.store_id, terminal_id=req.terminal_id, notify_url=req.notify_url,
            payer=req.payer, sub_mch_id=merchant.sub_merchants.get(channel), metadata=req.metadata,
            nfc={"token": req.nfc.masked_token(), "wallet": req.nfc.wallet} if req.nfc else None,
            wallet=(req.nfc.wallet or (channel if channel in ("applepay", "huaweipay", "samsungpay") else None))
            if req.nfc else None,
            # recovery must not race the synchronous call: first look after it has surely ended
            next_check_at=at + timedelta(seconds=adapter.settings.timeout + rule.first_delay) if immediate
            else at + timedelta(seconds=min(expire_in, max(rule.interval, adapter.settings.timeout + 1))),
        )
        breaker = self.breakers[channel]
        if not breaker.allow():
            existing = await self._db(load_payment_by_order(self.pool, merchant.id, req.merchant_order_no))
            if existing is not None:
                return self._idempotent(existing, req)
            raise ChannelUnavailable(f"{channel} is unavailable right now; try another way to pay")
        created = self._event(p, "payment.created", at)
        if req.profit_sharing:   # profit sharing (issue 16): held before the payment exists, so never lost
            if Flow.SHARE not in adapter.flows:
                breaker.release_probe()
                raise UnsupportedMethod(f"{channel} does not support profit sharing", field="profit_sharing")
            await self._db(self.pool.execute("insert into payment_holds (payment_id) values ($1) "
                                             "on conflict do nothing", p.id))
        try:
            inserted = await self._commit(Change(p, None, created))
        except Unavailable:
            breaker.release_probe()  # nothing reached the channel
            raise
        if not inserted:
            breaker.release_probe()   # an identical retry: nothing goes to the channel
            existing = await self._db(load_payment_by_order(self.pool, merchant.id, req.merchant_order_no))
            if existing is None:   # lost to a concurrent identical request that then vanished: impossible
                raise Unavailable("could not record the payment")
            return self._idempotent(existing, req)
        self.metrics.payments_created.labels(channel, str(req.method)).inc()
        pay_req = PayRequest(
            out_trade_no=p.id, amount=p.amount, method=wire_method(p.method), subject=p.subject or "payment",
            notify_url=f"{self.notify_base}/notify/{channel}", expire_at=p.expire_at, auth_code=req.auth_code,
            payer=req.payer, nfc=req.nfc, sub_mch_id=p.sub_mch_id, store_id=p.store_id,
            terminal_id=p.terminal_id, created_at=p.created_at, profit_sharing=req.profit_sharing)
        try:
            result = await adapter.pay(pay_req)
        except ChannelError as e:
            breaker.record(False)
            self.metrics.channel_errors.labels(channel, "pay", e.kind).inc()
            if e.retriable and immediate:
                return p, True     # outcome unknown: PROCESSING, recovery queries at the channel's cadence
            failed = await self._fail(p, "CHANNEL_UNAVAILABLE" if not e.retriable else "CHANNEL_ERROR", str(e))
            if not e.retriable:
                raise ChannelUnavailable(f"{channel} could not be reached; nothing was charged") from e
            return failed, True
        except UnsupportedFlow as e:
            breaker.release_probe()
            self.metrics.unsupported_flows.labels(channel, "pay").inc()
            await self._fail(p, "UNSUPPORTED_METHOD", str(e))
            raise UnsupportedMethod(str(e), field="method") from e
        breaker.record(True)
        try:
            return await self.apply_result(p, result), True
        except Unavailable:
            if not immediate:
                raise
            # The payment is committed (PROCESSING) and the channel has acted, so 503 UNAVAILABLE
            # ("nothing accepted") would be false: the merchant might charge the customer again.
            # Answer what is committed; recovery asks the channel once the database is back.
            return p, True

    def _idempotent(self, existing: Payment, req: CreatePayment) -> tuple[Payment, bool]:
        if existing.fingerprint != req.fingerprint:
            raise IdempotencyConflict("merchant_order_no was already used with different fields",
                                      field="merchant_order_no")
        return existing, False

    async def _fail(self, p: Payment, code: str, message: str) -> Payment:
        def decide(n: Payment):
            if n.status.final:
                return None
            et = n.transition(Status.FAILED, now())
            n.failure = {"code": code, "message": message[:200]}
            return et, None, False
        return await self._change(p, decide)

    # ------------------------------------------------ applying what a channel says
    async def apply_result(self, p: Payment, r: ChannelResult, *, next_check: float | None = None) -> Payment:
        """Move ``p`` to what the channel said. Unknown outcomes keep it open
        and schedule the next check ``next_check`` seconds from now."""
        target: Status | None
        match r.status:
            case TradeStatus.SUCCEEDED:
                target = Status.SUCCEEDED
            case TradeStatus.FAILED:
                target = Status.FAILED
            case TradeStatus.CLOSED:
                target = Status.CLOSED
            case TradeStatus.REVERSED:
                target = Status.REVERSED
            case TradeStatus.PROCESSING:
                target = Status.PROCESSING
            case TradeStatus.PENDING | TradeStatus.NOT_FOUND:
                target = None
            case _:
                raise AssertionError(r.status)

        def decide(n: Payment):
            at = now()
            etype = None
            if target is not None and target is not n.status:
                if n.status.final:
                    if not (n.status is Status.SUCCEEDED and target is Status.REVERSED):
                        if target is Status.SUCCEEDED and n.status in (Status.CLOSED, Status.FAILED):
                            log.error("payment %s is %s locally but the channel says SUCCEEDED: "
                                      "needs an operator (refund at the channel)", n.id, n.status)
                        return None
                if target is Status.PROCESSING and n.status is Status.PROCESSING:
                    etype = None
                else:
                    etype = n.transition(target, at)
            changed = False
            if r.channel_trade_no and r.channel_trade_no != n.channel_trade_no:
                n.channel_trade_no = r.channel_trade_no
                changed = True
            if r.qr_code and r.qr_code != n.qr_code:
                n.qr_code, changed = r.qr_code, True
            if r.pay_params and r.pay_params != n.pay_params:
                n.pay_params, changed = r.pay_params, True
            if r.wallet and not n.wallet:
                n.wallet, changed = r.wallet, True
            if etype == "payment.succeeded" and r.paid_at:
                n.paid_at = r.paid_at
            if etype == "payment.failed":
                n.failure = {"code": "DECLINED" if r.status is TradeStatus.FAILED else str(r.status),
                             "channel_code": r.failure_code, "message": (r.failure_message or "")[:200]}
            if not n.status.final and next_check is not None:
                n.next_check_at = at + timedelta(seconds=next_check)
                n.checks += 1
                changed = True
            if etype is None and not changed:
                return None
            n.updated_at = at
            return etype, None, False

        return await self._change(p, decide)

    # ---------------------------------------------------------------- waiting
    def _wake(self, payment_id: str) -> None:
        for f in self._waiters.pop(payment_id, ()):
            if not f.done():
                f.set_result(None)

    async def wait(self, merchant: Merchant, p: Payment, seconds: float) -> Payment:
        """Long-poll: return once ``p`` is final, or after ``seconds``. Changes made
        by this process wake the waiter at once; those made by other workers
        are seen by a poller that checks every waited payment in one query."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not p.status.final:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            fut = loop.create_future()
            fut.seq = p.seq  # type: ignore[attr-defined]
            self._waiters.setdefault(p.id, []).append(fut)
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll_waiters())
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                lst = self._waiters.get(p.id)
                if lst and fut in lst:
                    lst.remove(fut)
                    if not lst:
                        del self._waiters[p.id]
            p = await self.get_payment(merchant, p.id)
        return p

    async def _poll_waiters(self) -> None:
        while self._waiters:
            await asyncio.sleep(0.2)
            ids = list(self._waiters)
            try:
                rows = await self.pool.fetch("select id, seq from payments where id = any($1::text[])", ids)
            except Exception:
                continue
            for r in rows:
                futs = self._waiters.get(r["id"], [])
                if any(r["seq"] != getattr(f, "seq", r["seq"]) for f in futs):
                    self._wake(r["id"])

    # --------------------------------------------------------------- cancel
    async def cancel(self, merchant: Merchant, payment_id: str) -> Payment:
        p = await self.get_payment(merchant, payment_id)
        adapter = self.adapter_for(p.channel)
        ref = self.trade_ref(p)
        match p.status:
            case Status.PENDING:
                result = await self._call(adapter, Flow.CLOSE, adapter.close, ref, missing=TradeStatus.CLOSED)
                if result.status in (TradeStatus.PENDING, TradeStatus.NOT_FOUND):
                    result = dataclasses.replace(result, status=TradeStatus.CLOSED)
                return await self.apply_result(p, result)
            case Status.PROCESSING:
                return await self.reverse(p, adapter, ref)
            case Status.SUCCEEDED:
                window = float(adapter.settings.extra.get("reversal_window", 24 * 3600))
                if (p.method not in (Method.BARCODE, Method.SONIC) or p.refund_reserved
                        or Flow.REVERSE not in adapter.flows or (now() - p.created_at).total_seconds() > window):
                    raise InvalidState("a SUCCEEDED payment can only be refunded now")
                return await self.reverse(p, adapter, ref)
            case Status.FAILED | Status.CLOSED | Status.REVERSED:
                raise InvalidState(f"payment is {p.status}")

    async def reverse(self, p: Payment, adapter: ChannelAdapter, ref: TradeRef, tries: int = 3) -> Payment:
        flow, fn = (Flow.REVERSE, adapter.reverse) if Flow.REVERSE in adapter.flows else (Flow.CLOSE, adapter.close)
        last: Exception | None = None
        for i in range(tries):
            try:
                result = await self._call(adapter, flow, fn, ref)
            except ChannelFault as e:
                last = e
                await asyncio.sleep(0.2 * (i + 1))
                continue
            if result.retry:
                await asyncio.sleep(0.2 * (i + 1))
                continue
            if result.status in (TradeStatus.CLOSED, TradeStatus.NOT_FOUND) and flow is Flow.REVERSE:
                result = dataclasses.replace(result, status=TradeStatus.REVERSED)
            return await self.apply_result(p, result)
        raise ChannelUnavailable(f"{adapter.name} did not confirm the reversal yet; it will be retried") from last

    async def _call(self, adapter: ChannelAdapter, flow: Flow, fn, arg, *, missing: TradeStatus | None = None):
        """Call one channel flow; faults become API errors and count for the breaker."""
        try:
            result = await fn(arg)
        except UnsupportedFlow:
            self.metrics.unsupported_flows.labels(adapter.name, str(flow)).inc()
            if missing is not None:
                return ChannelResult(status=missing)
            raise InvalidState(f"{adapter.name} does not support {flow}")
        except ChannelError as e:
            self.breakers[adapter.name].record(False)
            self.metrics.channel_errors.labels(adapter.name, str(flow), e.kind).inc()
            raise ChannelFault(f"{adapter.name} {flow} failed: {e.kind}") from e
        self.breakers[adapter.name].record(True)
        return result

    def trade_ref(self, p: Payment) -> TradeRef:
        return TradeRef(out_trade_no=p.id, amount=p.amount, method=wire_method(p.method),
                        channel_trade_no=p.channel_trade_no,
                        sub_mch_id=p.sub_mch_id, created_at=p.created_at)

    # -------------------------------------------------------------- refunds
    async def create_refund(self, merchant: Merchant, payment_id: str, req: CreateRefund) -> tuple[Refund, bool]:
        p = await self.get_payment(merchant, payment_id)
        existing = await self._db(load_refund_by_no(self.pool, p.id, req.refund_no))
        if existing is not None:
            if existing.fingerprint != req.fingerprint:
                raise IdempotencyConflict("refund_no was already used with different fields", field="refund_no")
            return existing, False
        adapter = self.adapter_for(p.channel)
        if Flow.REFUND not in adapter.flows:
            raise UnsupportedMethod(f"{p.channel} does not support refunds")
        at = now()
        refund = Refund(id=new_id("rfd"), payment_id=p.id, merchant_id=merchant.id, refund_no=req.refund_no,
                        fingerprint=req.fingerprint, amount=req.amount, status=RefundState.PROCESSING,
                        created_at=at, updated_at=at, reason=req.reason,
                        next_check_at=at + timedelta(seconds=adapter.settings.timeout + 2))

        def decide(n: Payment):
            if n.status is not Status.SUCCEEDED:
                raise InvalidState(f"only a SUCCEEDED payment can be refunded (it is {n.status})")
            if n.refund_reserved + refund.amount > n.amount:
                raise RefundExceedsAmount(
                    f"refunds would exceed the payment amount ({n.amount - n.refund_reserved} fen left)",
                    field="amount")
            n.refund_reserved += refund.amount
            n.seq += 1
            n.updated_at = at
            return "refund.created", refund, True

        try:
            p = await self._change(p, decide)
        except Exception:
            again = await self._db(load_refund_by_no(self.pool, payment_id, req.refund_no))
            if again is not None:  # a concurrent identical request won
                if again.fingerprint != req.fingerprint:
                    raise IdempotencyConflict("refund_no was already used with different fields",
                                              field="refund_no") from None
                return again, False
            raise
        if self.before_refund is not None:   # profit sharing (issue 16): shares back first where needed
            blocked = await self.before_refund(p, refund)
            if blocked is not None:
                res = RefundResult(RefundStatus.FAILED, failure_code=blocked[0], failure_message=blocked[1])
                p, refund = await self.apply_refund_result(p, refund, res)
                return refund, True
        rreq = self.refund_request(p, refund)
        try:
            result = await adapter.refund(rreq)
        except ChannelError as e:
            self.metrics.channel_errors.labels(p.channel, "refund", e.kind).inc()
            if e.retriable:
                return refund, True   # outcome unknown: recovery queries it
            result = RefundResult(RefundStatus.FAILED, failure_code="CHANNEL_UNAVAILABLE",
                                  failure_message=str(e))
        _, refund = await self.apply_refund_result(p, refund, result)
        return refund, True

    def refund_request(self, p: Payment, r: Refund) -> RefundRequest:
        return RefundRequest(out_refund_no=r.id, out_trade_no=p.id, channel_trade_no=p.channel_trade_no,
                             total_amount=p.amount, refund_amount=r.amount, reason=r.reason,
                             notify_url=f"{self.notify_base}/notify/{p.channel}/refund", sub_mch_id=p.sub_mch_id,
                             payment_created_at=p.created_at)

    async def apply_refund_result(self, p: Payment, refund: Refund, result: RefundResult,
                                  next_check: float | None = None) -> tuple[Payment, Refund]:
        holder: dict[str, Refund] = {"r": refund}

        def decide(n: Payment):
            r = dataclasses.replace(holder["r"])
            at = now()
            match result.status:
                case RefundStatus.SUCCEEDED:
                    if r.status is not RefundState.PROCESSING:
                        return None
                    et = r.transition(RefundState.SUCCEEDED, at)
                    n.refunded_amount += r.amount
                case RefundStatus.FAILED:
                    if r.status is not RefundState.PROCESSING:
                        return None
                    et = r.transition(RefundState.FAILED, at)
                    n.refund_reserved -= r.amount
                    r.failure = {"code": "REFUND_FAILED", "channel_code": result.failure_code,
                                 "message": (result.failure_message or "")[:200]}
                case RefundStatus.PROCESSING:
                    if r.status is not RefundState.PROCESSING or next_check is None:
                        return None
                    r.next_check_at = at + timedelta(seconds=next_check)
                    r.checks += 1
                    et = None
            if result.channel_refund_no:
                r.channel_refund_no = result.channel_refund_no
            if et is not None:
                n.seq += 1
                n.updated_at = at
            holder["new"] = r
            return et, r, False

        for attempt in range(8):
            if attempt:   # someone else changed the payment or the refund: decide on fresh rows
                fresh_p = await self._db(load_payment(self.pool, p.id))
                fresh_r = await self._db(load_refund(self.pool, refund.id))
                if fresh_p is None or fresh_r is None:
                    raise NotFound("no such refund")
                p, holder["r"] = fresh_p, fresh_r
            try:
                new_p = await self._change(p, decide, attempts=1)
            except Stale:
                continue
            if "new" not in holder:
                return new_p, holder["r"]
            r = holder.pop("new")
            if r.status is not RefundState.PROCESSING:
                self.metrics.refunds_final.labels(p.channel, str(r.status)).inc()
            return new_p, r
        raise Stale(f"refund {refund.id} kept changing")

    # -------------------------------------------------------- notifications
    async def handle_notification(self, channel: str, kind: str, headers: Any, body: bytes):
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise NotFound("unknown channel")
        try:
            try:
                note = await adapter.parse_notification(kind, headers, body)
            except (NotificationRejected, UnsupportedFlow):
                raise
            except Exception as e:
                # anyone can post anything here: a parser that trips over it is a rejection, not a 500
                log.warning("notification from %s could not be parsed (%s)", channel, type(e).__name__)
                raise NotificationRejected("malformed") from None
            await self._apply_notification(adapter, note)
        except NotificationRejected as e:
            self.metrics.notifications_rejected.labels(channel, e.reason).inc()
            self.metrics.notifications.labels(channel, kind, "rejected").inc()
            log.warning("notification from %s rejected: %s", channel, e.reason)
            return adapter.ack(False)
        except UnsupportedFlow:
            self.metrics.unsupported_flows.labels(channel, "notify").inc()
            raise NotFound("this channel sends no notifications here")
        self.metrics.notifications.labels(channel, kind, "applied").inc()
        return adapter.ack(True)

    async def _apply_notification(self, adapter: ChannelAdapter, note: Notification) -> None:
        p = await self._db(load_payment(self.pool, note.out_trade_no))
        if p is None or p.channel != adapter.name:
            raise NotificationRejected("unknown_order")
        s = adapter.settings
        if note.merchant_ref is not None and note.merchant_ref not in {s.mch_id, s.app_id, p.sub_mch_id} - {None, ""}:
            raise NotificationRejected("merchant_mismatch")
        if note.kind == "refund":
            r = await self._db(load_refund(self.pool, note.out_refund_no or ""))
            if r is None or r.payment_id != p.id or note.refund is None:
                raise NotificationRejected("unknown_order")
            if note.amount is not None and note.amount not in (r.amount, p.amount):
                raise NotificationRejected("amount_mismatch")
            await self.apply_refund_result(p, r, note.refund)
            return
        if note.amount is not None and note.amount != p.amount:
            raise NotificationRejected("amount_mismatch")
        if note.payment is None:
            raise NotificationRejected("malformed")
        if note.payment.amount is not None and note.payment.amount != p.amount:
            raise NotificationRejected("amount_mismatch")
        await self.apply_result(p, note.payment)
