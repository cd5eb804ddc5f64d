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
from paycore.merchants.auth import Merchant, PendingNonce
from paycore.core.breaker import Breaker
from paycore.core.fees import FeeBook
from paycore.config import Config
from paycore.errors import (AmountLimitExceeded, ChannelFault, ChannelUnavailable, IdempotencyConflict,
                            InvalidRequest, InvalidState, NotFound, RefundExceedsAmount, Replayed, Stale, Unavailable,
                            UnsupportedMethod)
from paycore.core import attention
from paycore.core.calls import CallLog
from paycore.core.decisions import PayVerdict, RefundVerdict, cancel_outcome, payment_verdict, refund_verdict, target_of
from paycore.core.journal import (DB_DOWN, AlreadyResolved, Change, Journal, RichChange, commit_rich, load_payment,
                                  load_payment_by_order, load_refund, load_refund_by_no, open_attention_exists,
                                  settled)
from paycore.core.models import Payment, Refund, RefundState, Status, dumps, event_payload, new_id, now
from paycore.core.routing import Router
from paycore.core.validation import CreatePayment, CreateRefund

log = logging.getLogger("paycore.engine")

#: methods whose payment is taken at once (the customer is present with a code or card)
IMMEDIATE = frozenset({Method.BARCODE, Method.SONIC, Method.NFC, Method.WALLET})

def wire_method(m: Method) -> Method:
    """What the channel is asked for: a sonic code is a payment code delivered by sound."""
    return Method.BARCODE if m is Method.SONIC else m


Decision = Callable[[Payment], "tuple[str | None, Refund | None, bool] | None"]


@dataclasses.dataclass(slots=True)
class Plan:
    """What a rare, many-event change does (late money, attention items, resolutions).

    ``events``: (type, refund for the payload) in order; ``opened``: attention
    items (kind, refund id, evidence) — each adds an ``attention.opened``
    event; ``resolve``: (item id, actor, resolution, reason)."""

    events: list[tuple[str, Refund | None]] = dataclasses.field(default_factory=list)
    refunds: list[tuple[Refund, bool]] = dataclasses.field(default_factory=list)
    opened: list[tuple[str, str | None, dict[str, Any]]] = dataclasses.field(default_factory=list)
    resolve: tuple[int, str, str, str, dict[str, Any]] | None = None


RichDecision = Callable[[Payment], "Plan | None"]

#: the refund_no of the refund paycore makes of late money (one per payment)
LATE_REFUND_NO = "paycore-late-payment"


class Engine:
    def __init__(self, cfg: Config, pool: asyncpg.Pool, journal: Journal, adapters: dict[str, ChannelAdapter],
                 breakers: dict[str, Breaker], router: Router, metrics: Metrics,
                 fees: FeeBook | None = None) -> None:
        self.cfg = cfg
        self.fees = fees
        self.metrics = metrics
        self.pool = pool
        self.journal = journal
        self.adapters = adapters
        self.breakers = breakers
        self.router = router
        self.notify_base = cfg.server.public_base_url.rstrip("/")
        self.calls = CallLog(pool)      # each provider call of a payment, written off the request path
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

    async def _fee(self, p: Payment, at: datetime) -> int:
        if self.fees is None:
            return 0
        return await self._db(self.fees.fee(p.merchant_id, p.channel, str(p.method), p.amount, at))

    async def _change(self, p: Payment, decide: Decision, attempts: int = 8) -> Payment:
        """Apply ``decide`` to a copy of ``p`` and commit; on a stale row reload and retry.

        ``decide`` mutates the copy and returns (event type or None, refund or
        None, refund_insert) — or None for "nothing to do"."""
        for _ in range(attempts):
            new = p.copy()
            out = decide(new)
            if out is None:
                return p
            etype, refund, refund_insert = out
            at = new.updated_at
            if new.status is Status.SUCCEEDED and p.status is not Status.SUCCEEDED:
                # the fee is fixed the moment the money is taken, by the rule in effect then
                new.fee = await self._fee(new, at)
            event = self._event(new, etype, at, refund) if etype else None
            if await self._commit(Change(new, p.seq, event, refund, refund_insert)):
                if etype and new.status.final and etype.startswith("payment."):
                    self.metrics.count(self.metrics.payments_final, new.channel, str(new.method), str(new.status))
                return new
            p = await self._reload(p)
        raise Stale(f"payment {p.id} kept changing")

    async def _reload(self, p: Payment) -> Payment:
        fresh = await self._db(load_payment(self.pool, p.id))
        if fresh is None:
            raise NotFound("no such payment")
        return fresh

    async def _rich(self, p: Payment, decide: RichDecision, attempts: int = 8) -> Payment:
        """Like ``_change`` for a :class:`Plan`: several events (each its own ``seq``),
        refunds, attention items opened or resolved — one transaction."""
        drop_open = False
        for _ in range(attempts):
            new = p.copy()
            plan = decide(new)
            if plan is not None and drop_open:
                plan.opened = []      # opened meanwhile by someone else: that item stands
            if plan is None or not (plan.events or plan.opened or plan.resolve):
                return p
            at = now()
            new.updated_at = at
            opened = []
            for kind, refund_id, evidence in plan.opened:
                item_id = await self._db(self.pool.fetchval("select nextval('attention_items_id_seq')"))
                opened.append((item_id, kind, refund_id, evidence))
            types: list[tuple[str, Refund | None, dict[str, Any] | None]] = [(t, r, None) for t, r in plan.events]
            types += [("attention.opened", None, {"id": i, "kind": k, "refund_id": rid, "status": "OPEN",
                                                  "evidence": ev}) for i, k, rid, ev in opened]
            if plan.resolve is not None:
                item_id, actor, resolution, reason, item = plan.resolve
                types.append(("attention.resolved", None, dict(item, status="RESOLVED", resolved_by=actor,
                                                               resolution=resolution, reason=reason)))
            new.seq = p.seq + len(types)
            events = []
            for i, (etype, refund, item) in enumerate(types):
                seq = p.seq + 1 + i
                eid = new_id("evt")
                events.append((eid, etype, self._payload(eid, etype, new, at, seq, refund, item), at, seq))
            change = RichChange(new, p.seq, events, plan.refunds,
                                [(i, k, rid, dumps(ev).decode()) for i, k, rid, ev in opened],
                                plan.resolve[:4] if plan.resolve else None)
            try:
                ok = await commit_rich(self.pool, change)
            except AlreadyResolved:
                raise InvalidState("this attention item is already resolved") from None
            except asyncpg.UniqueViolationError:
                ok, drop_open = False, True     # the same item was opened concurrently
            except DB_DOWN as e:
                # its COMMIT may have reached Postgres before the answer was lost: look
                got = await settled(self.pool, [(new, events[0][0])])
                if not (got and got[0]):
                    raise Unavailable("database unavailable") from e
                ok = True
            if ok:
                self._wake(new.id)
                for _, kind, _, _ in opened:
                    self.metrics.attention_opened.labels(new.channel, kind).inc()
                return new
            p = await self._reload(p)
        raise Stale(f"payment {p.id} kept changing")

    @staticmethod
    def _payload(eid: str, etype: str, p: Payment, at: datetime, seq: int, refund: Refund | None,
                 item: dict[str, Any] | None) -> bytes:
        ev: dict[str, Any] = {"event_id": eid, "type": etype, "seq": seq, "occurred_at": at, "payment": p.to_api()}
        if refund is not None:
            ev["refund"] = refund.to_api()
        if item is not None:
            ev["attention"] = item
        return dumps(ev)

    async def flag(self, p: Payment, kind: str, evidence: dict[str, Any], *, refund_id: str | None = None,
                   stop_checking: bool = False) -> Payment:
        """Open an attention item (once: a repeated finding is the same open item)."""
        if await self._db(open_attention_exists(self.pool, p.id, kind, refund_id)):
            return p
        log.warning("attention: %s for payment %s (%s)", kind, p.id, p.channel)

        def decide(n: Payment) -> Plan:
            if stop_checking and not n.status.final:
                n.next_check_at = None
            return Plan(opened=[(kind, refund_id, evidence)])
        return await self._rich(p, decide)

    # --------------------------------------------------------------- creating
    def adapter_for(self, channel: str) -> ChannelAdapter:
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise ChannelUnavailable(f"channel {channel} is not configured", field="channel")
        return adapter

    async def create_payment(self, merchant: Merchant, req: CreatePayment,
                             nonce: PendingNonce | None = None) -> tuple[Payment, bool]:
        """``nonce``: the API request's, not yet recorded — the payment's journal statement records it
        (a replay is refused there, 401, nothing written); paths that act before that claim it first."""
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
            subject=req.subject, store_id=req.store_id, terminal_id=req.terminal_id,
            notify_url=req.notify_url or merchant.notify_url,   # issue 14: the merchant's default endpoint
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
            if nonce is not None:
                await nonce.claim()
            existing = await self._db(load_payment_by_order(self.pool, merchant.id, req.merchant_order_no))
            if existing is not None:
                return self._idempotent(existing, req)
            raise ChannelUnavailable(f"{channel} is unavailable right now; try another way to pay")
        created = self._event(p, "payment.created", at)
        if req.profit_sharing:   # profit sharing (issue 16): held before the payment exists, so never lost
            if Flow.SHARE not in adapter.flows:
                breaker.release_probe()
                raise UnsupportedMethod(f"{channel} does not support profit sharing", field="profit_sharing")
            if nonce is not None:
                try:
                    await nonce.claim()
                except BaseException:
                    breaker.release_probe()
                    raise
            await self._db(self.pool.execute("insert into payment_holds (payment_id) values ($1) "
                                             "on conflict do nothing", p.id))
        try:
            inserted = await self._commit(Change(p, None, created, nonce=nonce.for_write() if nonce else None))
        except Replayed:
            breaker.release_probe()  # a replayed request: nothing written, nothing reached the channel
            if nonce is not None:
                nonce.replayed()
            raise
        except Unavailable:
            breaker.release_probe()  # nothing reached the channel
            raise
        if nonce is not None:
            nonce.written()
        if not inserted:
            breaker.release_probe()   # an identical retry: nothing goes to the channel
            existing = await self._db(load_payment_by_order(self.pool, merchant.id, req.merchant_order_no))
            if existing is None:   # lost to a concurrent identical request that then vanished: impossible
                raise Unavailable("could not record the payment")
            existing, created = self._idempotent(existing, req)
            if self._lacks_params(existing):
                existing = await self._ask_again(existing, req)
            return existing, created
        self.metrics.count(self.metrics.payments_created, channel, str(req.method))
        pay_req = self._pay_request(p, req)
        try:
            async with self.calls.call(p.id, channel, "pay") as c:
                result = await adapter.pay(pay_req)
                c.answered(result)
        except ChannelError as e:
            if e.caller:
                raise await self._refused(merchant, p, e) from e
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
        except BaseException as e:
            # anything else (a bug in an adapter, a cancelled request): the probe must not stay
            # "in flight" for ever, and the channel may have acted — recovery asks it
            breaker.release_probe()
            if isinstance(e, Exception):
                self.metrics.channel_errors.labels(channel, "pay", "unexpected").inc()
                log.error("%s pay raised %s; the payment stays open and is queried", channel, type(e).__name__)
                if immediate:
                    return p, True
                raise ChannelFault(f"{channel} answered something paycore could not read") from None
            raise
        breaker.record(True)
        try:
            return await self.apply_result(p, result), True
        except (Unavailable, Stale):
            # The payment is committed and the channel has acted, so 503 UNAVAILABLE ("nothing
            # accepted") would be false: the merchant might charge the customer again. Answer
            # what is committed plus what the channel gave (a QR's code, in-app parameters);
            # recovery asks the channel once the database is back, a retry asks again.
            return dataclasses.replace(p, qr_code=result.qr_code or p.qr_code,
                                       pay_params=result.pay_params or p.pay_params,
                                       channel_trade_no=result.channel_trade_no or p.channel_trade_no), True

    def _lacks_params(self, p: Payment) -> bool:
        """A PENDING QR/in-app payment whose channel answer was never recorded."""
        return (p.status is Status.PENDING and p.qr_code is None and p.pay_params is None
                and p.method in (Method.QR, Method.JSAPI, Method.H5, Method.APP)
                and (now() - p.created_at).total_seconds() > self.adapter_for(p.channel).settings.timeout)

    async def _ask_again(self, p: Payment, req: CreatePayment) -> Payment:
        """Order again with the same number (providers answer a repeat with the same
        order) so that an identical retry gets the code the first answer lost."""
        adapter = self.adapter_for(p.channel)
        try:
            async with self.calls.call(p.id, p.channel, "pay") as c:
                result = await adapter.pay(self._pay_request(p, req))
                c.answered(result)
        except (ChannelError, UnsupportedFlow):
            return p
        return await self.apply_result(p, result)

    def _pay_request(self, p: Payment, req: CreatePayment) -> PayRequest:
        return PayRequest(
            out_trade_no=p.id, amount=p.amount, method=wire_method(p.method), subject=p.subject or "payment",
            notify_url=f"{self.notify_base}/notify/{p.channel}", expire_at=p.expire_at, auth_code=req.auth_code,
            payer=req.payer, nfc=req.nfc, sub_mch_id=p.sub_mch_id, store_id=p.store_id,
            terminal_id=p.terminal_id, created_at=p.created_at, profit_sharing=req.profit_sharing,
            return_url=req.return_url)

    async def _refused(self, merchant: Merchant, p: Payment, e: ChannelError) -> InvalidRequest:
        """The channel refused the request itself (malformed, not permitted): the caller's error.
        Nothing happened at the channel, which is healthy, so the breaker never counts it (a
        half-open probe is handed on); it is counted per merchant, the payment FAILED, and the
        answer a 400 naming the field where the channel said which."""
        self.breakers[p.channel].release_probe()
        self.metrics.caller_errors.labels(merchant.id, p.channel).inc()
        await self._fail(p, "INVALID_REQUEST", str(e))
        field = e.field or {Method.NFC: "nfc", Method.BARCODE: "auth_code", Method.SONIC: "auth_code",
                            Method.JSAPI: "payer", Method.WALLET: "payer"}.get(p.method, "body")
        return InvalidRequest(f"{p.channel} refused the request as malformed or not permitted ({field}); "
                              "nothing was charged", field=field)

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
    async def apply_result(self, p: Payment, r: ChannelResult, *, next_check: float | None = None,
                           source: str = "answer") -> Payment:
        """Move ``p`` to what the channel said. Unknown outcomes keep it open
        and schedule the next check ``next_check`` seconds from now. Late money
        and amounts that disagree are attention items (``source`` says which
        kind of answer: answer, query, notification, statement)."""
        match payment_verdict(p, r.status, r.amount):
            case PayVerdict.LATE_SUCCESS:
                return await self.late_money(p, r, source)
            case PayVerdict.AMOUNT_MISMATCH:
                return await self.flag(p, attention.AMOUNT_MISMATCH, {
                    "source": source, "channel_status": str(r.status), "our_amount": p.amount,
                    "channel_amount": r.amount, "channel_trade_no": r.channel_trade_no})
        target = target_of(r.status)

        def decide(n: Payment):
            if payment_verdict(n, r.status, r.amount) is not PayVerdict.APPLY:
                return None
            at = now()
            etype = None
            if target is not None and target is not n.status:
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
            if next_check is not None and (not n.status.final or n.intent):
                n.next_check_at = at + timedelta(seconds=next_check)
                n.checks += 1
                changed = True
            if etype is None and not changed:
                return None
            n.updated_at = at
            return etype, None, False

        return await self._change(p, decide)

    async def late_money(self, p: Payment, r: ChannelResult, source: str) -> Payment:
        """Money the channel took for a payment paycore had ended without it:
        ``payment.late_succeeded`` (a merchant webhook), an attention item and,
        unless the merchant holds late money for an operator, a refund of it
        (committed first as an intent; sent now and driven by recovery)."""
        hold = await self._db(self.pool.fetchval(
            "select late_payment_action = 'hold' from merchants where id = $1", p.merchant_id))
        holder: dict[str, Refund] = {}

        def decide(n: Payment) -> Plan | None:
            if payment_verdict(n, r.status, r.amount) is not PayVerdict.LATE_SUCCESS:
                return None
            at = now()
            n.late_paid_at = r.paid_at or at
            if r.channel_trade_no and not n.channel_trade_no:
                n.channel_trade_no = r.channel_trade_no
            plan = Plan(events=[("payment.late_succeeded", None)])
            refund = None
            if not hold and n.refund_reserved == 0:
                refund = self._new_refund(n, LATE_REFUND_NO, n.amount, "late payment returned", at)
                n.refund_reserved += refund.amount
                plan.events.append(("refund.created", refund))
                plan.refunds.append((refund, True))
                holder["r"] = refund
            plan.opened.append((attention.LATE_SUCCESS, refund.id if refund else None, {
                "source": source, "local_status": str(n.status), "channel_status": str(r.status),
                "amount": n.amount, "channel_trade_no": r.channel_trade_no or n.channel_trade_no,
                "auto_refund": refund.id if refund else None, "held": bool(hold)}))
            return plan

        new = await self._rich(p, decide)
        if new is p:
            return p
        self.metrics.late_payments.labels(p.channel, "held" if hold else "refunded").inc()
        log.warning("late money for %s payment %s (%s): %s", p.status, p.id, p.channel,
                    "held for an operator" if hold else "refunding it")
        if "r" in holder:
            await self.send_refund(new, holder["r"])
        return new

    def _new_refund(self, p: Payment, refund_no: str, amount: int, reason: str | None, at: datetime,
                    fingerprint: str = "") -> Refund:
        adapter = self.adapters.get(p.channel)
        wait = (adapter.settings.timeout + 2) if adapter else 5.0
        return Refund(id=new_id("rfd"), payment_id=p.id, merchant_id=p.merchant_id, refund_no=refund_no,
                      fingerprint=fingerprint, amount=amount, status=RefundState.PROCESSING, created_at=at,
                      updated_at=at, reason=reason, next_check_at=at + timedelta(seconds=wait))

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
        """Close a PENDING payment, reverse a PROCESSING one (or a SUCCEEDED barcode
        payment within its channel's window). The intent is committed before the
        channel is asked, so recovery finishes it whatever happens next."""
        p = await self.get_payment(merchant, payment_id)
        adapter = self.adapter_for(p.channel)
        if p.intent is None:
            match p.status:
                case Status.PENDING:
                    intent = self.close_intent(adapter)
                case Status.PROCESSING:
                    intent = "reverse" if Flow.REVERSE in adapter.flows else "close"
                case Status.SUCCEEDED:
                    window = float(adapter.settings.extra.get("reversal_window", 24 * 3600))
                    if (p.method not in (Method.BARCODE, Method.SONIC) or p.refund_reserved
                            or Flow.REVERSE not in adapter.flows
                            or (now() - p.created_at).total_seconds() > window):
                        raise InvalidState("a SUCCEEDED payment can only be refunded now")
                    intent = "reverse"
                case _:
                    raise InvalidState(f"payment is {p.status}")
            p = await self.record_intent(p, intent)
        p = await self.drive_intent(p, tries=3)
        if p.intent == "reverse" and p.status is not Status.PENDING:
            raise ChannelUnavailable(f"{adapter.name} did not confirm the reversal yet; paycore keeps trying")
        return p

    @staticmethod
    def close_intent(adapter: ChannelAdapter) -> str:
        """How an unpaid order is ended: by a cancel that leaves a tombstone where the channel
        has one (it also gives back money a scan took meanwhile: so it is a reverse, and a
        success seen meanwhile does not end it), else by a close."""
        return "reverse" if adapter.cancel_is_tombstone and Flow.REVERSE in adapter.flows else "close"

    async def record_intent(self, p: Payment, intent: str) -> Payment:
        """Commit ``intent`` with a next check before any provider is asked."""
        adapter = self.adapters.get(p.channel)
        wait = (adapter.settings.timeout + adapter.settings.recovery.first_delay) if adapter else 5.0

        def decide(n: Payment):
            if n.intent is not None or n.status in (Status.FAILED, Status.CLOSED, Status.REVERSED):
                return None
            n.intent = intent
            n.checks = 0
            n.next_check_at = now() + timedelta(seconds=wait)
            return None, None, False
        return await self._change(p, decide)

    async def _reschedule(self, p: Payment, seconds: float) -> Payment:
        def decide(n: Payment):
            if n.intent is None and n.status.final:
                return None
            n.next_check_at = now() + timedelta(seconds=seconds)
            n.checks += 1
            return None, None, False
        return await self._change(p, decide)

    def intent_expired(self, p: Payment, at: datetime) -> bool:
        """Has the code died at the provider (so an unconfirmed close/reverse may end)?"""
        rule = self.adapters[p.channel].settings.recovery
        if p.intent == "close" or p.status is Status.PENDING:
            return at >= p.expire_at + timedelta(seconds=rule.expiry_grace)
        if p.status is Status.SUCCEEDED:
            return False        # money was taken: only the provider's word ends the reversal
        return at >= p.created_at + timedelta(seconds=rule.give_up_after + rule.expiry_grace)

    async def drive_intent(self, p: Payment, tries: int = 1) -> Payment:
        """Ask the channel to close/reverse ``p`` (its committed intent) and apply
        what the answer proves; unproven, the intent stays and is checked again."""
        adapter = self.adapters[p.channel]
        rule = adapter.settings.recovery
        by_reverse = Flow.REVERSE in adapter.flows and p.intent == "reverse"
        flow, fn = (Flow.REVERSE, adapter.reverse) if by_reverse else (Flow.CLOSE, adapter.close)
        for i in range(tries):
            if i:
                await asyncio.sleep(0.2 * i)
            try:
                res = await self._call(adapter, flow, fn, self.trade_ref(p),
                                       missing=TradeStatus.CLOSED if p.intent == "close" else TradeStatus.REVERSED)
            except ChannelFault:
                continue
            proven = cancel_outcome(p.intent or "close", res.status, res.retry, by_reverse=by_reverse,
                                    close_not_found_final=adapter.close_not_found_final,
                                    cancel_is_tombstone=adapter.cancel_is_tombstone,
                                    expired=self.intent_expired(p, now()))
            if proven is None:
                continue
            if proven is TradeStatus.SUCCEEDED and p.intent == "reverse" and res.failure_code:
                # the channel refuses to reverse a paid trade (e.g. past its window): the money
                # stays, the intent ends; the merchant refunds instead
                p = await self.apply_result(p, dataclasses.replace(res, failure_code=None))
                return await self._drop_intent(p)
            if proven is TradeStatus.CLOSED and p.status is Status.SUCCEEDED:
                proven = TradeStatus.REVERSED
            elif proven is TradeStatus.REVERSED and p.status is Status.PENDING:
                proven = TradeStatus.CLOSED     # an order never paid (or paid and given back) ends CLOSED
            return await self.apply_result(p, dataclasses.replace(res, status=proven, retry=False))
        backoff = min(rule.interval * (2 ** min(p.checks, 6)), 300.0)
        if p.checks + 1 >= rule.reverse_retries and p.intent == "reverse":
            p = await self.flag(p, attention.OUTCOME_UNKNOWN, {
                "intent": p.intent, "attempts": p.checks + 1, "local_status": str(p.status),
                "note": "the channel has not confirmed the reversal; paycore keeps trying"})
        return await self._reschedule(p, backoff)

    async def _drop_intent(self, p: Payment) -> Payment:
        def decide(n: Payment):
            if n.intent is None:
                return None
            n.intent = None
            if n.status.final:
                n.next_check_at = None
            return None, None, False
        return await self._change(p, decide)

    async def _call(self, adapter: ChannelAdapter, flow: Flow, fn, arg, *, missing: TradeStatus | None = None):
        """Call one channel flow; faults become API errors and count for the breaker."""
        try:
            async with self.calls.call(arg.out_trade_no, adapter.name, str(flow)) as c:
                result = await fn(arg)
                c.answered(result)
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
        refund = self._new_refund(p, req.refund_no, req.amount, req.reason, at, req.fingerprint)
        refund.merchant_id = merchant.id

        def decide(n: Payment):
            if n.status is not Status.SUCCEEDED:
                raise InvalidState(f"only a SUCCEEDED payment can be refunded (it is {n.status})")
            if n.intent is not None:    # the reversal would give it all back: a refund too would be twice
                raise InvalidState("a reversal of this payment is under way")
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
        return await self.send_refund(p, refund), True

    async def send_refund(self, p: Payment, refund: Refund) -> Refund:
        """Send a committed refund (its number is what the provider sees; a re-send
        with the same number is the providers' documented way to retry). Once the
        provider may have acted, the answer is what is recorded, never "nothing
        accepted": a database hiccup leaves the PROCESSING refund to recovery."""
        adapter = self.adapter_for(p.channel)
        try:
            async with self.calls.call(p.id, p.channel, "refund", refund.id) as c:
                result = await adapter.refund(self.refund_request(p, refund))
                c.answered(result)
        except ChannelError as e:
            self.metrics.channel_errors.labels(p.channel, "refund", e.kind).inc()
            if e.retriable:
                return refund   # outcome unknown: recovery queries it / re-sends the same number
            result = RefundResult(RefundStatus.FAILED, failure_code="CHANNEL_UNAVAILABLE", failure_message=str(e))
        try:
            _, refund = await self.apply_refund_result(p, refund, result)
        except (Unavailable, Stale):
            log.warning("refund %s: the channel answered %s but it could not be recorded yet; recovery will",
                        refund.id, result.status)
        return refund

    def refund_request(self, p: Payment, r: Refund) -> RefundRequest:
        return RefundRequest(out_refund_no=r.id, out_trade_no=p.id, channel_trade_no=p.channel_trade_no,
                             total_amount=p.amount, refund_amount=r.amount, reason=r.reason,
                             notify_url=f"{self.notify_base}/notify/{p.channel}/refund", sub_mch_id=p.sub_mch_id,
                             payment_created_at=p.created_at)

    async def apply_refund_result(self, p: Payment, refund: Refund, result: RefundResult,
                                  next_check: float | None = None, *, source: str = "answer"
                                  ) -> tuple[Payment, Refund]:
        """Apply what the channel says of ``refund``. A NOT_FOUND or PROCESSING
        answer keeps it PROCESSING (checked again in ``next_check`` seconds);
        past the channel's refund deadline it goes to the attention queue."""
        adapter = self.adapters.get(p.channel)
        deadline = adapter.settings.recovery.refund_deadline if adapter else 86400.0
        holder: dict[str, Refund] = {"r": refund}
        for attempt in range(8):
            if attempt:   # someone else changed the payment or the refund: decide on fresh rows
                fresh_p = await self._db(load_payment(self.pool, p.id))
                fresh_r = await self._db(load_refund(self.pool, refund.id))
                if fresh_p is None or fresh_r is None:
                    raise NotFound("no such refund")
                p, holder["r"] = fresh_p, fresh_r
            r0 = holder["r"]
            past = (now() - r0.created_at).total_seconds() >= deadline
            verdict = refund_verdict(p, r0, result.status, past_deadline=past)
            if verdict in (RefundVerdict.EXPIRE, RefundVerdict.CONFLICT):
                kind = attention.OUTCOME_UNKNOWN if verdict is RefundVerdict.EXPIRE else attention.REFUND_CONFLICT
                r = dataclasses.replace(r0, next_check_at=None) if verdict is RefundVerdict.EXPIRE else r0
                evidence = {"source": source, "channel_status": str(result.status), "refund_status": str(r0.status),
                            "amount": r0.amount, "refund_no": r0.refund_no, "age_seconds": int(
                                (now() - r0.created_at).total_seconds()),
                            "payment_refund_reserved": p.refund_reserved, "payment_amount": p.amount}
                if await self._db(open_attention_exists(self.pool, p.id, kind, r0.id)):
                    return p, r0
                new_p = await self._rich(p, lambda n: Plan(refunds=[(r, False)], opened=[(kind, r.id, evidence)]))
                return new_p, r
            try:
                new_p = await self._change(p, lambda n: self._refund_step(n, holder, verdict, result, next_check),
                                           attempts=1)
            except Stale:
                continue
            if "new" not in holder:
                return new_p, holder["r"]
            r = holder.pop("new")
            if r.status is not RefundState.PROCESSING:
                self.metrics.refunds_final.labels(p.channel, str(r.status)).inc()
            return new_p, r
        raise Stale(f"refund {refund.id} kept changing")

    @staticmethod
    def _refund_step(n: Payment, holder: dict[str, Refund], verdict: RefundVerdict, result: RefundResult,
                     next_check: float | None):
        r = dataclasses.replace(holder["r"])
        at = now()
        et = None
        match verdict:
            case RefundVerdict.SUCCEED:
                et = r.transition(RefundState.SUCCEEDED, at)
                n.refunded_amount += r.amount
            case RefundVerdict.LATE_SUCCEED:
                # marked FAILED (its reservation released), done at the provider after all
                et = r.transition(RefundState.SUCCEEDED, at)
                r.failure = None
                n.refund_reserved += r.amount
                n.refunded_amount += r.amount
            case RefundVerdict.FAIL:
                et = r.transition(RefundState.FAILED, at)
                n.refund_reserved -= r.amount
                r.failure = {"code": "REFUND_FAILED", "channel_code": result.failure_code,
                             "message": (result.failure_message or "")[:200]}
            case RefundVerdict.WAIT | RefundVerdict.RESEND:
                if next_check is None:
                    return None
                r.next_check_at = at + timedelta(seconds=next_check)
                r.checks += 1
            case _:
                return None
        if result.channel_refund_no:
            r.channel_refund_no = result.channel_refund_no
        if et is not None:
            n.seq += 1
            n.updated_at = at
        holder["new"] = r
        return et, r, False

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

    async def _note_mismatch(self, p: Payment, evidence: dict[str, Any], refund_id: str | None = None) -> None:
        """A signed notification that names another amount: api.md has it change nothing (it is
        refused and counted), so the item is recorded beside the payment, without an event."""
        try:
            await self._db(attention.record_only(self.pool, attention.AMOUNT_MISMATCH, p.id, refund_id,
                                                 p.merchant_id, p.channel, dumps(evidence).decode()))
        except asyncpg.PostgresError:
            log.exception("could not record an amount mismatch of %s", p.id)
            return
        self.metrics.attention_opened.labels(p.channel, attention.AMOUNT_MISMATCH).inc()

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
                await self._note_mismatch(p, {"source": "notification", "kind": "refund", "refund_amount": r.amount,
                                              "channel_amount": note.amount}, r.id)
                raise NotificationRejected("amount_mismatch")
            await self.apply_refund_result(p, r, note.refund, source="notification")
            return
        if note.payment is None:
            raise NotificationRejected("malformed")
        stated = note.amount if note.amount is not None else note.payment.amount
        if stated is not None and (stated != p.amount or note.payment.amount not in (None, p.amount)):
            # signed by the provider and still another amount: a disagreement an operator must see
            await self._note_mismatch(p, {"source": "notification", "our_amount": p.amount,
                                          "channel_amount": stated, "channel_status": str(note.payment.status)})
            raise NotificationRejected("amount_mismatch")
        await self.apply_result(p, note.payment, source="notification")

    # ------------------------------------------------------------- operators
    async def requery(self, payment_id: str) -> tuple[Payment, ChannelResult | None]:
        """Ask the channel about a payment now and apply its answer (operators)."""
        p = await self._db(load_payment(self.pool, payment_id))
        if p is None:
            raise NotFound("no such payment")
        adapter = self.adapter_for(p.channel)
        try:
            res = await self._call(adapter, Flow.QUERY, adapter.query, self.trade_ref(p))
        except InvalidState:
            return p, None
        return await self.apply_result(p, res, source="query"), res

    async def resolve_attention(self, item_id: int, action: str, *, actor: str, reason: str) -> dict:
        """Resolve an attention item through the engine: the action's money effect
        (a refund, a requery, a refund outcome the provider confirmed, closing a
        payment) and ``attention.resolved`` commit together, with who and why."""
        item = await self._db(attention.get_item(self.pool, item_id))
        if item is None:
            raise NotFound("no such attention item")
        if item["status"] != "OPEN":
            raise InvalidState("this attention item is already resolved")
        if action not in attention.ACTIONS.get(item["kind"], ("acknowledge",)):
            raise InvalidState(f"{action!r} does not resolve a {item['kind']} item; one of: "
                               + ", ".join(attention.ACTIONS.get(item["kind"], ("acknowledge",))), field="action")
        if not actor.strip() or not reason.strip():
            raise InvalidRequest("who resolves it and why are required", field="reason")
        if item["payment_id"] is None:
            # money a statement showed for an order paycore never made: no payment, no journal;
            # the operator's check is recorded on the item itself
            if action != "acknowledge":
                raise InvalidState("an item that names no payment can only be acknowledged", field="action")
            if not await self._db(attention.acknowledge_unlinked(self.pool, item_id, actor, reason)):
                raise InvalidState("this attention item is already resolved")
            self.metrics.attention_resolved.labels(item["kind"], action).inc()
            out = await self._db(attention.get_item(self.pool, item_id))
            assert out is not None
            return out
        p = await self._db(load_payment(self.pool, item["payment_id"]))
        if p is None:
            raise NotFound("no such payment")
        summary = {k: item[k] for k in ("id", "kind", "refund_id")}
        summary["evidence"] = item["evidence"]
        resolution = action
        if action == "requery":
            p, res = await self.requery(p.id)
            if res is None or res.status in (TradeStatus.PENDING, TradeStatus.PROCESSING, TradeStatus.NOT_FOUND):
                raise InvalidState(f"the channel still gives no final answer ({res.status if res else 'no query'})")
            resolution = f"requery: the channel says {res.status}"
        refund = await self._db(load_refund(self.pool, item["refund_id"])) if item["refund_id"] else None
        resolve = (int(item_id), actor, resolution, reason, summary)

        def decide(n: Payment) -> Plan:
            plan = Plan(resolve=resolve)
            at = now()
            match action:
                case "refund":
                    room = n.amount - n.refund_reserved
                    if n.late_paid_at is None or room <= 0:
                        raise InvalidState("nothing of this late payment is left to refund")
                    r = self._new_refund(n, LATE_REFUND_NO, room, f"late payment returned: {reason}"[:200], at)
                    n.refund_reserved += r.amount
                    plan.events.append(("refund.created", r))
                    plan.refunds.append((r, True))
                    holder["r"] = r
                case "refund_failed" | "refund_succeeded":
                    if refund is None:
                        raise InvalidState("this item names no refund")
                    r = dataclasses.replace(refund)
                    if r.status is not RefundState.PROCESSING:
                        raise InvalidState(f"the refund is already {r.status}")
                    if action == "refund_failed":
                        et = r.transition(RefundState.FAILED, at)
                        n.refund_reserved -= r.amount
                        r.failure = {"code": "REFUND_FAILED", "channel_code": None,
                                     "message": f"confirmed by an operator: {reason}"[:200]}
                    else:
                        et = r.transition(RefundState.SUCCEEDED, at)
                        n.refunded_amount += r.amount
                    plan.events.append((et, r))
                    plan.refunds.append((r, False))
                case "close":
                    if not n.status.final:
                        n.transition(Status.CLOSED, at)
                        n.failure = {"code": "CLOSED_BY_OPERATOR", "message": reason[:200]}
                        plan.events.append(("payment.closed", None))
            return plan

        holder: dict[str, Refund] = {}
        p = await self._rich(p, decide)
        self.metrics.attention_resolved.labels(item["kind"], action).inc()
        if "r" in holder:
            await self.send_refund(p, holder["r"])
        out = await self._db(attention.get_item(self.pool, item_id))
        assert out is not None
        return out
