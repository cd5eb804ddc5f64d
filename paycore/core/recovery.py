"""The recovery loop: ends every payment and refund whose outcome is open.

Each process runs one. Due rows (``next_check_at <= now()``) are claimed
with ``for update skip locked`` and pushed ``lease`` seconds into the future
in the same transaction, so several processes share the work without doing
it twice, and a process that dies mid-check leaves rows that become due again
after the lease — a restart picks up what the previous process left.

Per payment, by the channel's RecoveryRule:
* an intent (cancel/reverse/close committed before the channel was asked)
  → ask again until the channel's answer proves it (decisions.cancel_outcome);
  a "not found" that is not final keeps it open until the code expired plus
  the channel's grace; reverses unconfirmed after ``reverse_retries`` also
  open an attention item.
* PENDING past ``expire_at`` → record the close intent and drive it (→ CLOSED,
  or SUCCEEDED if the customer paid meanwhile); before that, query every ``interval``.
* PROCESSING → query every ``interval``; a final answer ends it; once
  ``give_up_after`` has passed since creation, record ``final_action``
  (reverse or close) as the intent and drive it.
* a channel that is no longer configured → attention item, checks stop.
Refunds PROCESSING → query the refund; "not found" re-sends the same number;
unknown past ``refund_deadline`` → attention item, checks stop.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.base import ChannelError, ChannelResult, Flow, RefundResult, RefundStatus, TradeStatus, UnsupportedFlow
from paycore.tasks import Loop
from paycore.core import attention
from paycore.core.engine import Engine
from paycore.errors import PaycoreError, Stale, Unavailable
from paycore.core.journal import DB_DOWN, PAYMENT_SELECT, REFUND_SELECT, load_payment
from paycore.core.models import Payment, Refund, Status, now

log = logging.getLogger("paycore.recovery")
LEASE = 30.0


class Recovery(Loop):
    """Claims due payments and refunds and drives each to an end by its channel's rule."""
    name = "recovery"

    def __init__(self, engine: Engine, interval: float = 0.5, batch: int = 200, concurrency: int = 50) -> None:
        super().__init__(interval=interval, backoff_max=max(5.0, interval))
        self.engine = engine
        self.metrics = engine.metrics
        self.batch = batch
        self.sem = asyncio.Semaphore(concurrency)
        self._ticks = 0

    async def step(self) -> float:
        n = await self.tick()
        self._ticks += 1
        if self._ticks % 120 == 0:
            await self.engine.pool.execute("delete from nonces where expires_at < now()")
        return 0.0 if n >= self.batch else self.interval

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, DB_DOWN + (Unavailable,))

    async def tick(self) -> int:
        pool = self.engine.pool
        lease_until = now() + timedelta(seconds=LEASE)
        async with pool.acquire() as conn:
            async with conn.transaction():
                prow = await conn.fetch(
                    f"{PAYMENT_SELECT} where next_check_at <= now() order by next_check_at "
                    "limit $1 for update skip locked", self.batch)
                if prow:
                    await conn.execute("update payments set next_check_at = $2 where id = any($1::text[])",
                                       [r["id"] for r in prow], lease_until)
            async with conn.transaction():
                rrow = await conn.fetch(
                    f"{REFUND_SELECT} where next_check_at <= now() order by next_check_at "
                    "limit $1 for update skip locked", self.batch)
                if rrow:
                    await conn.execute("update refunds set next_check_at = $2 where id = any($1::text[])",
                                       [r["id"] for r in rrow], lease_until)
            backlog = await conn.fetchval("select count(*) from payments where next_check_at is not null")
        self.metrics.recovery_backlog.labels("payment").set(backlog)
        payments = [Payment.from_record(r) for r in prow]
        for p in payments:
            p.next_check_at = lease_until   # what the row now holds
        refunds = [Refund.from_record(r) for r in rrow]
        await asyncio.gather(*(self._guard(self.recover_payment(p)) for p in payments),
                             *(self._guard(self.recover_refund(r)) for r in refunds))
        return len(prow) + len(rrow)

    async def _guard(self, coro) -> None:
        async with self.sem:
            try:
                await coro
            except (Unavailable, Stale, PaycoreError, ChannelError) as e:
                log.info("recovery: will retry later (%s)", type(e).__name__)
            except DB_DOWN:
                pass
            except Exception:
                log.exception("recovery of one item failed; it will be retried after its lease")

    async def _query(self, p: Payment) -> ChannelResult | None:
        adapter = self.engine.adapters[p.channel]
        try:
            async with self.engine.calls.call(p.id, p.channel, "query") as c:
                res = await adapter.query(self.engine.trade_ref(p))
                c.answered(res)
        except UnsupportedFlow:
            return None
        except ChannelError as e:
            self.metrics.channel_errors.labels(p.channel, "query", e.kind).inc()
            return None
        self.metrics.recovery_actions.labels(p.channel, "query").inc()
        return res

    async def recover_payment(self, p: Payment) -> None:
        eng = self.engine
        adapter = eng.adapters.get(p.channel)
        if adapter is None:
            # a disabled (or removed) channel: asking nobody every 30 s for ever helps no one;
            # an operator decides (attention item), and the payment stops being checked
            await eng.flag(p, attention.CHANNEL_DISABLED, {"local_status": str(p.status), "intent": p.intent},
                           stop_checking=True)
            return
        if p.intent is not None:
            await eng.drive_intent(p)
            return
        if p.status.final:
            return
        rule = adapter.settings.recovery
        t = now()
        age = (t - p.created_at).total_seconds()
        res = await self._query(p)
        if res is not None and res.status in (TradeStatus.SUCCEEDED, TradeStatus.FAILED, TradeStatus.CLOSED,
                                              TradeStatus.REVERSED):
            await eng.apply_result(p, res, source="query")
            return
        if p.status is Status.PENDING:
            if t >= p.expire_at:
                # expired: close it at the channel (committed first), then drive that intent
                await eng.drive_intent(await eng.record_intent(p, eng.close_intent(adapter)))
                return
            wait = min(rule.interval, max((p.expire_at - t).total_seconds(), 0.05))
            await eng.apply_result(p, res or ChannelResult(TradeStatus.PENDING), next_check=wait, source="query")
            return
        # PROCESSING
        if age >= rule.give_up_after:
            use_close = rule.final_action == "close" or Flow.REVERSE not in adapter.flows
            await eng.drive_intent(await eng.record_intent(p, "close" if use_close else "reverse"))
            return
        nxt = min(rule.interval, max(rule.give_up_after - age, 0.05))
        await eng.apply_result(p, res or ChannelResult(TradeStatus.PROCESSING), next_check=nxt, source="query")

    async def recover_refund(self, r: Refund) -> None:
        """Query the refund; a "not found" (or a channel without a refund query) re-sends
        the same refund number — the providers' documented retry, which never refunds
        twice; past the channel's refund deadline an unknown refund goes to attention."""
        eng = self.engine
        p = await eng._db(load_payment(eng.pool, r.payment_id))
        if p is None:
            return
        adapter = eng.adapters.get(p.channel)
        if adapter is None:
            await eng.flag(p, attention.CHANNEL_DISABLED, {"refund_id": r.id, "refund_status": str(r.status)},
                           refund_id=r.id)
            return
        rule = adapter.settings.recovery
        req = eng.refund_request(p, r)
        res: RefundResult | None
        try:
            async with eng.calls.call(p.id, p.channel, "refund_query", r.id) as c:
                res = await adapter.query_refund(req)
                c.answered(res)
        except UnsupportedFlow:
            res = RefundResult(RefundStatus.NOT_FOUND)   # nothing to ask: the same number again is safe
        except ChannelError as e:
            self.metrics.channel_errors.labels(p.channel, "refund_query", e.kind).inc()
            res = None
        past = (now() - r.created_at).total_seconds() >= rule.refund_deadline
        if res is not None and res.status is RefundStatus.NOT_FOUND and not past:
            self.metrics.recovery_actions.labels(p.channel, "refund_resend").inc()
            try:
                async with eng.calls.call(p.id, p.channel, "refund", r.id) as c:
                    sent = await adapter.refund(req)
                    c.answered(sent)
            except (UnsupportedFlow, ChannelError):
                sent = None
            # a re-send that is refused as a repeat, or not yet done, proves nothing: keep checking
            res = sent if sent is not None and sent.status is RefundStatus.SUCCEEDED else None
        await eng.apply_refund_result(p, r, res or RefundResult(RefundStatus.PROCESSING),
                                      next_check=min(rule.interval * (2 ** min(r.checks, 6)), 300.0),
                                      source="query")
