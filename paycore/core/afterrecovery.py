"""The recovery step of money after the payment: ends every split, share return
and payout whose outcome is open.

Like :mod:`paycore.core.recovery` (and next to it, one per process): due rows
(``next_check_at <= now()``) are claimed with ``for update skip locked`` and
pushed ``LEASE`` seconds ahead in the same transaction, so processes share the
work and a process killed mid-check leaves rows that become due again.
Each one is queried at its channel; a channel that has no record of it is sent
the same request again (same out number: applied once); a final answer ends
it; anything else schedules the next check with back-off.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.base import ChannelError
from paycore.core.journal import DB_DOWN
from paycore.core.models import now
from paycore.core.payouts import PAYOUT_SELECT, Payouts, _payout
from paycore.core.splits import RETURN_SELECT, SPLIT_SELECT, Splits, SplitReturn, _split
from paycore.errors import PaycoreError, Unavailable
from paycore.tasks import Loop

log = logging.getLogger("paycore.recovery")
LEASE = 30.0


class AfterRecovery(Loop):
    name = "recovery-after"

    def __init__(self, splits: Splits, payouts: Payouts, interval: float = 0.5, batch: int = 100) -> None:
        super().__init__(interval=interval, backoff_max=max(5.0, interval))
        self.splits, self.payouts = splits, payouts
        self.pool = splits.pool
        self.batch = batch
        self.sem = asyncio.Semaphore(20)

    def expected(self, exc: BaseException) -> bool:
        return isinstance(exc, DB_DOWN + (Unavailable,))

    async def step(self) -> float:
        n = await self.tick()
        return 0.0 if n >= self.batch else self.interval

    async def _claim(self, conn, select: str, table: str):
        async with conn.transaction():
            rows = await conn.fetch(f"{select} where next_check_at <= now() order by next_check_at "
                                    "limit $1 for update skip locked", self.batch)
            if rows:
                await conn.execute(f"update {table} set next_check_at = $2 where id = any($1::text[])",
                                   [r["id"] for r in rows], now() + timedelta(seconds=LEASE))
        return rows

    async def tick(self) -> int:
        async with self.pool.acquire() as conn:
            srows = await self._claim(conn, SPLIT_SELECT, "splits")
            rrows = await self._claim(conn, RETURN_SELECT, "split_returns")
            prows = await self._claim(conn, PAYOUT_SELECT, "payouts")
        await asyncio.gather(*(self._guard(self.splits.recover_split(_split(r))) for r in srows),
                             *(self._guard(self.splits.recover_return(SplitReturn(**dict(r)))) for r in rrows),
                             *(self._guard(self.payouts.recover(_payout(r))) for r in prows))
        return len(srows) + len(rrows) + len(prows)

    async def _guard(self, coro) -> None:
        async with self.sem:
            try:
                await coro
            except (PaycoreError, ChannelError) as e:
                log.info("recovery: will retry later (%s)", type(e).__name__)
            except DB_DOWN:
                pass
            except Exception:
                log.exception("recovery of one split/payout failed; it will be retried after its lease")
