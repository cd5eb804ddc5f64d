"""The recovery loop: ends every payment and refund whose outcome is open.

Each process runs one. Due rows (``next_check_at <= now()``) are claimed
with ``for update skip locked`` and pushed ``lease`` seconds into the future
in the same transaction, so several processes share the work without doing
it twice, and a process that dies mid-check leaves rows that become due again
after the lease — a restart picks up what the previous process left.

Per payment, by the channel's RecoveryRule:
* PENDING past ``expire_at`` → close at the channel (→ CLOSED, or SUCCEEDED
  if the customer paid meanwhile); before that, query every ``interval``.
* PROCESSING → query every ``interval``; a final answer ends it; once
  ``give_up_after`` has passed since creation, query once more and then
  ``final_action`` (reverse or close) until the channel confirms.
Refunds PROCESSING → query the refund until it is final.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.base import ChannelError, ChannelResult, Flow, RefundResult, RefundStatus, TradeStatus, UnsupportedFlow
from paycore.tasks import Loop
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
            res = await adapter.query(self.engine.trade_ref(p))
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
        if adapter is None or p.status.final:
            return
        rule = adapter.settings.recovery
        t = now()
        age = (t - p.created_at).total_seconds()
        res = await self._query(p)
        if res is not None and res.status in (TradeStatus.SUCCEEDED, TradeStatus.FAILED, TradeStatus.CLOSED,
                                              TradeStatus.REVERSED):
            await eng.apply_result(p, res)
            return
        if p.status is Status.PENDING:
            if t >= p.expire_at:
                await self._end(p, Flow.CLOSE, adapter.close, TradeStatus.CLOSED)
                return
            wait = min(rule.interval, max((p.expire_at - t).total_seconds(), 0.05))
            await eng.apply_result(p, res or ChannelResult(TradeStatus.PENDING), next_check=wait)
            return
        # PROCESSING
        if age >= rule.give_up_after:
            if rule.final_action == "close" or Flow.REVERSE not in adapter.flows:
                await self._end(p, Flow.CLOSE, adapter.close, TradeStatus.CLOSED)
            else:
                await self._end(p, Flow.REVERSE, adapter.reverse, TradeStatus.REVERSED)
            return
        nxt = min(rule.interval, max(rule.give_up_after - age, 0.05))
        await eng.apply_result(p, res or ChannelResult(TradeStatus.PROCESSING), next_check=nxt)

    async def _end(self, p: Payment, flow: Flow, fn, final: TradeStatus) -> None:
        """Reverse or close until the channel confirms; until then check again soon."""
        eng = self.engine
        rule = eng.adapters[p.channel].settings.recovery
        try:
            res = await fn(eng.trade_ref(p))
        except UnsupportedFlow:
            res = ChannelResult(final)   # nothing to undo at the channel: end it here
        except ChannelError as e:
            self.metrics.channel_errors.labels(p.channel, str(flow), e.kind).inc()
            res = None
        self.metrics.recovery_actions.labels(p.channel, str(flow)).inc()
        if res is None or res.retry or res.status in (TradeStatus.PROCESSING, TradeStatus.PENDING):
            backoff = min(rule.interval * (2 ** min(p.checks, 6)), 300.0)
            await eng.apply_result(p, ChannelResult(TradeStatus.PROCESSING if p.status is Status.PROCESSING
                                                    else TradeStatus.PENDING), next_check=backoff)
            return
        if res.status is TradeStatus.NOT_FOUND:
            res = ChannelResult(final)
        await eng.apply_result(p, res)

    async def recover_refund(self, r: Refund) -> None:
        eng = self.engine
        p = await eng._db(load_payment(eng.pool, r.payment_id))
        if p is None:
            return
        adapter = eng.adapters.get(p.channel)
        if adapter is None:
            return
        rule = adapter.settings.recovery
        try:
            res = await adapter.query_refund(eng.refund_request(p, r))
        except (UnsupportedFlow, ChannelError):
            res = None
        await eng.apply_refund_result(p, r, res or RefundResult(RefundStatus.PROCESSING),
                                      next_check=min(rule.interval * (2 ** min(r.checks, 6)), 300.0))
