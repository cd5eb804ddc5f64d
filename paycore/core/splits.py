"""Profit sharing (分账): receivers, splits of a SUCCEEDED payment, release of the rest,
and shares taken back before a refund where the channel requires it.

Intent before side effect: a split is committed PROCESSING (with its event
``split.created`` on the payment's stream and a next check) before the channel
is asked; so is every return. The provider dedupes on our ids (``spl_…``,
``spr_…``), so recovery (:mod:`paycore.core.afterrecovery`) may send the same
request again when a query finds nothing. An unknown outcome stays PROCESSING;
only the provider's final answer makes a split FAILED.

What may be shared: the payment's amount, less refunds not FAILED, less what
splits not FAILED already share (net of what was returned). A split without
receivers and ``finish: true`` releases the rest to the merchant; after any
split with ``finish`` nothing more can be shared.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from channels.base import ChannelAdapter, ChannelError, Flow, UnsupportedFlow
from channels.transfers import (LineResult, ReceiverSpec, ShareLine, ShareRequest, ShareResult, ShareReturnRequest,
                                ShareReturnResult, ShareStatus, mask_name)
from paycore.core.afterlog import bump_payment, db, lock_payment, next_check, write_event
from paycore.core.engine import Engine
from paycore.core.journal import load_payment
from paycore.core.models import Payment, Refund, Status, new_id, now
from paycore.core.validation import CreateReceiver, CreateSplit
from paycore.errors import (AmountLimitExceeded, ChannelUnavailable, IdempotencyConflict, InvalidRequest,
                            InvalidState, NotFound, UnsupportedMethod)
from paycore.merchants.auth import Merchant, SecretBox

log = logging.getLogger("paycore.splits")

SPLIT_COLS = ("id", "payment_id", "merchant_id", "split_no", "fingerprint", "amount", "finish", "status", "receivers",
              "returned", "channel_split_no", "failure", "created_at", "updated_at", "next_check_at", "checks")
RETURN_COLS = ("id", "split_id", "refund_id", "receiver_id", "amount", "status", "failure", "created_at",
               "updated_at", "next_check_at", "checks")
RECEIVER_COLS = ("id", "merchant_id", "receiver_no", "fingerprint", "channel", "type", "account", "name_masked",
                 "status", "failure", "created_at", "updated_at")
SPLIT_SELECT = f"select {', '.join(SPLIT_COLS)} from splits"
RETURN_SELECT = f"select {', '.join(RETURN_COLS)} from split_returns"
RECEIVER_SELECT = f"select {', '.join(RECEIVER_COLS)} from receivers"


@dataclass(slots=True)
class Receiver:
    id: str
    merchant_id: str
    receiver_no: str
    fingerprint: str
    channel: str
    type: str
    account: str
    name_masked: str | None
    status: str
    failure: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "receiver_no": self.receiver_no, "channel": self.channel, "type": self.type,
                "account": self.account, "name": self.name_masked, "status": self.status}


@dataclass(slots=True)
class Split:
    id: str
    payment_id: str
    merchant_id: str
    split_no: str
    fingerprint: str
    amount: int
    finish: bool
    status: str
    receivers: list[dict[str, Any]]     # [{receiver_id, type, account, amount, description, status, returned, failure}]
    returned: int = 0
    channel_split_no: str | None = None
    failure: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    next_check_at: datetime | None = None
    checks: int = 0

    def record(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in SPLIT_COLS)

    def to_api(self) -> dict[str, Any]:
        lines = []
        for r in self.receivers:
            line = {"receiver_id": r["receiver_id"], "amount": r["amount"], "status": r["status"]}
            if r.get("failure"):
                line["failure"] = r["failure"]
            lines.append(line)
        return {"id": self.id, "payment_id": self.payment_id, "split_no": self.split_no, "status": self.status,
                "receivers": lines}


@dataclass(slots=True)
class SplitReturn:
    id: str
    split_id: str
    refund_id: str
    receiver_id: str
    amount: int
    status: str
    failure: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    next_check_at: datetime | None = None
    checks: int = 0

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "split_id": self.split_id, "refund_id": self.refund_id,
                "receiver_id": self.receiver_id, "amount": self.amount, "status": self.status,
                "failure": self.failure}


def _split(row: Any) -> Split:
    return Split(**dict(row))


def _status(s: ShareStatus) -> str:
    return "PROCESSING" if s in (ShareStatus.PROCESSING, ShareStatus.NOT_FOUND) else str(s)


class Splits:
    """The split service; ``engine`` lends its pool, adapters and metrics."""

    #: how often a refund waits for a return that the channel has not finished yet
    RETURN_POLLS = 4

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.pool = engine.pool
        self.box = box

    def _share_adapter(self, channel: str, what: str = "channel") -> ChannelAdapter:
        adapter = self.engine.adapter_for(channel)
        if Flow.SHARE not in adapter.flows:
            raise UnsupportedMethod(f"{channel} does not support profit sharing", field=what)
        return adapter

    # ----------------------------------------------------------------- receivers
    async def create_receiver(self, merchant: Merchant, req: CreateReceiver) -> tuple[Receiver, bool]:
        existing = await self._receiver_by_no(merchant.id, req.receiver_no)
        if existing is not None:
            return self._same_receiver(existing, req), False
        adapter = self._share_adapter(req.channel)
        if req.type not in getattr(adapter, "receiver_types", ()):
            raise UnsupportedMethod(f"{req.channel} does not share to a receiver of type {req.type}", field="type")
        spec = ReceiverSpec(type=req.type, account=req.account, name=req.name,
                            sub_mch_id=merchant.sub_merchants.get(req.channel))
        # binding moves no money and the providers treat a repeat as a success, so it is asked first
        # and only a bound receiver is kept
        try:
            bound = await adapter.add_receiver(spec)
        except ChannelError as e:
            self.engine.metrics.channel_errors.labels(req.channel, "share", e.kind).inc()
            raise ChannelUnavailable(f"{req.channel} could not bind the receiver now; try again") from e
        if not bound.ok:
            raise InvalidRequest(f"{req.channel} refused the receiver: {bound.failure_code} "
                                 f"{(bound.failure_message or '')[:120]}".strip(), field="account")
        at = now()
        r = Receiver(id=new_id("rcv"), merchant_id=merchant.id, receiver_no=req.receiver_no,
                     fingerprint=req.fingerprint, channel=req.channel, type=req.type, account=req.account,
                     name_masked=mask_name(req.name), status="ACTIVE", failure=None, created_at=at, updated_at=at)
        name_enc = self.box.seal(merchant.id, req.name) if req.name else None
        inserted = await db(self.pool.fetchval(
            f"insert into receivers ({', '.join(RECEIVER_COLS)}, name_enc) values "
            f"({', '.join(f'${i + 1}' for i in range(len(RECEIVER_COLS) + 1))}) "
            "on conflict (merchant_id, receiver_no) do nothing returning id",
            *(getattr(r, c) for c in RECEIVER_COLS), name_enc))
        if inserted is None:   # a concurrent identical request won
            again = await self._receiver_by_no(merchant.id, req.receiver_no)
            assert again is not None
            return self._same_receiver(again, req), False
        return r, True

    def _same_receiver(self, existing: Receiver, req: CreateReceiver) -> Receiver:
        if existing.fingerprint != req.fingerprint:
            raise IdempotencyConflict("receiver_no was already used with different fields", field="receiver_no")
        return existing

    async def _receiver_by_no(self, merchant_id: str, no: str) -> Receiver | None:
        row = await db(self.pool.fetchrow(f"{RECEIVER_SELECT} where merchant_id = $1 and receiver_no = $2",
                                                merchant_id, no))
        return Receiver(**dict(row)) if row else None

    # -------------------------------------------------------------------- splits
    async def get_split(self, merchant: Merchant, split_id: str) -> Split:
        row = await db(self.pool.fetchrow(f"{SPLIT_SELECT} where id = $1", split_id))
        if row is None or row["merchant_id"] != merchant.id:
            raise NotFound("no such split")
        return _split(row)

    async def create_split(self, merchant: Merchant, payment_id: str, req: CreateSplit) -> tuple[Split, bool]:
        p = await self.engine.get_payment(merchant, payment_id)
        existing = await self._split_by_no(p.id, req.split_no)
        if existing is not None:
            return self._same_split(existing, req), False
        adapter = self._share_adapter(p.channel)
        lines = await self._lines(merchant, p.channel, req)
        at = now()
        split = Split(id=new_id("spl"), payment_id=p.id, merchant_id=merchant.id, split_no=req.split_no,
                      fingerprint=req.fingerprint, amount=sum(line["amount"] for line in lines), finish=req.finish,
                      status="PROCESSING", receivers=lines, created_at=at, updated_at=at,
                      next_check_at=next_check(adapter, 0))
        try:
            p = await db(self._commit_new_split(p.id, split))
        except asyncpg.UniqueViolationError:
            again = await self._split_by_no(p.id, req.split_no)
            assert again is not None
            return self._same_split(again, req), False
        return await self._send(adapter, p, split), True

    def _same_split(self, existing: Split, req: CreateSplit) -> Split:
        if existing.fingerprint != req.fingerprint:
            raise IdempotencyConflict("split_no was already used with different fields", field="split_no")
        return existing

    async def _split_by_no(self, payment_id: str, no: str) -> Split | None:
        row = await db(self.pool.fetchrow(f"{SPLIT_SELECT} where payment_id = $1 and split_no = $2",
                                                payment_id, no))
        return _split(row) if row else None

    async def _lines(self, merchant: Merchant, channel: str, req: CreateSplit) -> list[dict[str, Any]]:
        ids = [line.receiver_id for line in req.receivers]
        rows = await db(self.pool.fetch(f"{RECEIVER_SELECT} where id = any($1::text[])", ids)) if ids else []
        found = {r["id"]: Receiver(**dict(r)) for r in rows}
        out = []
        for i, line in enumerate(req.receivers):
            r = found.get(line.receiver_id)
            if r is None or r.merchant_id != merchant.id:
                raise InvalidRequest("no such receiver", field=f"receivers[{i}].receiver_id")
            if r.channel != channel or r.status != "ACTIVE":
                raise InvalidRequest(f"the receiver is not bound at {channel}", field=f"receivers[{i}].receiver_id")
            out.append({"receiver_id": r.id, "type": r.type, "account": r.account, "amount": line.amount,
                        "description": line.description, "status": "PROCESSING", "returned": 0, "failure": None})
        return out

    async def _commit_new_split(self, payment_id: str, split: Split) -> Payment:
        async with self.pool.acquire() as conn, conn.transaction():
            p = await lock_payment(conn, payment_id)
            assert p is not None
            if p.status is not Status.SUCCEEDED:
                raise InvalidState(f"only a SUCCEEDED payment can be shared (it is {p.status})")
            if not await conn.fetchval("select true from payment_holds where payment_id = $1", p.id):
                raise InvalidState("the payment was not created with profit_sharing: true")
            shared, finished = await conn.fetchrow(
                "select coalesce(sum(amount - returned), 0)::bigint, coalesce(bool_or(finish), false) from splits "
                "where payment_id = $1 and status <> 'FAILED'", p.id)
            if finished:
                raise InvalidState("sharing of this payment is finished (the rest was released)")
            left = p.amount - p.refund_reserved - shared
            if split.amount > left:
                raise AmountLimitExceeded(f"the split exceeds what is left to share ({left} fen)", field="receivers")
            p = await bump_payment(conn, p, split.created_at)
            await conn.execute(f"insert into splits ({', '.join(SPLIT_COLS)}) values "
                               f"({', '.join(f'${i + 1}' for i in range(len(SPLIT_COLS)))})", *split.record())
            await self._event(conn, p, split, "split.created")
        return p

    async def _event(self, conn: Any, p: Payment, split: Split, etype: str, ret: SplitReturn | None = None) -> None:
        body: dict[str, Any] = {"payment": p.to_api(), "split": split.to_api()}
        if ret is not None:
            body["split_return"] = ret.to_api()
        await write_event(conn, stream_id=p.id, seq=p.seq, etype=etype, at=p.updated_at, body=body,
                          merchant_id=p.merchant_id, notify_url=p.notify_url)

    def share_request(self, p: Payment, split: Split) -> ShareRequest:
        return ShareRequest(out_order_no=split.id, out_trade_no=p.id, channel_trade_no=p.channel_trade_no,
                            total_amount=p.amount, finish=split.finish, sub_mch_id=p.sub_mch_id,
                            lines=[ShareLine(type=r["type"], account=r["account"], amount=r["amount"],
                                             description=r["description"]) for r in split.receivers])

    async def _send(self, adapter: ChannelAdapter, p: Payment, split: Split) -> Split:
        """Ask the channel for a committed split; an unknown outcome leaves it to recovery."""
        try:
            result = await adapter.share(self.share_request(p, split))
        except ChannelError as e:
            self.engine.metrics.channel_errors.labels(adapter.name, "share", e.kind).inc()
            if e.retriable:
                return split
            result = ShareResult(ShareStatus.FAILED, failure_code="CHANNEL_REFUSED", failure_message=str(e))
        except UnsupportedFlow as e:
            result = ShareResult(ShareStatus.FAILED, failure_code="UNSUPPORTED", failure_message=str(e))
        return await self.apply(split.id, result)

    async def apply(self, split_id: str, result: ShareResult, *, reschedule: bool = False) -> Split:
        """Record what the channel said about a split (final: with its event)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"{SPLIT_SELECT} where id = $1", split_id)
            assert row is not None
            p = await lock_payment(conn, row["payment_id"])
            split = _split(await conn.fetchrow(f"{SPLIT_SELECT} where id = $1 for update", split_id))
            if split.status != "PROCESSING" or p is None:
                return split
            at = now()
            final = result.status in (ShareStatus.SUCCEEDED, ShareStatus.FAILED)
            self._merge_lines(split, result, final)
            if result.channel_order_no:
                split.channel_split_no = result.channel_order_no
            split.updated_at = at
            if final:
                split.status = str(result.status)
                split.next_check_at = None
                if result.failure_code:
                    split.failure = {"code": "SPLIT_FAILED", "channel_code": result.failure_code,
                                     "message": (result.failure_message or "")[:200]}
            elif reschedule:
                split.checks += 1
                split.next_check_at = next_check(self.engine.adapters[p.channel], split.checks)
            await conn.execute(
                "update splits set status = $2, receivers = $3, channel_split_no = $4, failure = $5, "
                "updated_at = $6, next_check_at = $7, checks = $8 where id = $1", split.id, split.status,
                split.receivers, split.channel_split_no, split.failure, at, split.next_check_at, split.checks)
            if final:
                p = await bump_payment(conn, p, at)
                await self._event(conn, p, split, "split.succeeded" if split.status == "SUCCEEDED" else "split.failed")
        return split

    @staticmethod
    def _merge_lines(split: Split, result: ShareResult, final: bool) -> None:
        by_account: dict[str, list[LineResult]] = {}
        for lr in result.lines:
            by_account.setdefault(lr.account, []).append(lr)
        for line in split.receivers:
            cands = by_account.get(line["account"]) or []
            match = next((c for c in cands if c.amount == line["amount"]), cands[0] if cands else None)
            if match is not None:
                line["status"] = _status(match.status)
                if match.status is ShareStatus.FAILED:
                    line["failure"] = {"code": "SPLIT_FAILED", "channel_code": match.failure_code,
                                       "message": match.failure_code or ""}
            elif final:
                line["status"] = "FAILED" if result.status is ShareStatus.FAILED else "SUCCEEDED"
                if result.status is ShareStatus.FAILED:
                    line["failure"] = {"code": "SPLIT_FAILED", "channel_code": result.failure_code,
                                       "message": (result.failure_message or "")[:200]}

    # ------------------------------------------------- returns before a refund
    async def before_refund(self, p: Payment, refund: Refund) -> tuple[str, str] | None:
        """Called by the engine between committing a refund and asking the channel for it.
        Where the channel refunds only from the merchant's own share (WeChat: 分账回退 first), take
        back from merchant receivers what the refund needs. None: go ahead; else (code, message):
        the refund fails without reaching the channel (the returns already made stay made)."""
        adapter = self.engine.adapters.get(p.channel)
        if adapter is None or not getattr(adapter, "shares_return_before_refund", False):
            return None
        rows = await db(self.pool.fetch(f"{SPLIT_SELECT} where payment_id = $1 and status <> 'FAILED' "
                                              "order by created_at desc", p.id))
        splits = [_split(r) for r in rows]
        if not splits:
            return None
        shared = sum(s.amount - s.returned for s in splits)
        kept = p.amount - (p.refund_reserved - refund.amount) - shared
        need = refund.amount - kept
        if need <= 0:
            return None
        if any(s.status == "PROCESSING" for s in splits):
            return "SPLIT_PROCESSING", "a split of this payment is still in progress; refund again once it is final"
        plan: list[tuple[Split, dict[str, Any], int]] = []
        for s in splits:
            for line in s.receivers:
                if need <= 0:
                    break
                can = line["amount"] - line.get("returned", 0)
                if line["status"] == "SUCCEEDED" and line["type"] == "merchant" and can > 0:
                    take = min(can, need)
                    plan.append((s, line, take))
                    need -= take
        if need > 0:
            return "SHARES_NOT_RETURNABLE", f"{need} fen of the refund is with receivers that cannot return it"
        for s, line, take in plan:
            ret = await self._return(adapter, p, s, line, take, refund)
            if ret.status != "SUCCEEDED":
                return ("SHARE_RETURN_FAILED" if ret.status == "FAILED" else "SHARE_RETURN_PENDING",
                        "a share could not be taken back from its receiver yet; nothing was refunded")
        return None

    async def _return(self, adapter: ChannelAdapter, p: Payment, s: Split, line: dict[str, Any], amount: int,
                      refund: Refund) -> SplitReturn:
        at = now()
        ret = SplitReturn(id=new_id("spr"), split_id=s.id, refund_id=refund.id, receiver_id=line["receiver_id"],
                          amount=amount, status="PROCESSING", failure=None, created_at=at, updated_at=at,
                          next_check_at=next_check(adapter, 0))
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await lock_payment(conn, p.id)
            assert locked is not None
            await conn.execute(f"insert into split_returns ({', '.join(RETURN_COLS)}) values "
                               f"({', '.join(f'${i + 1}' for i in range(len(RETURN_COLS)))})",
                               *(getattr(ret, c) for c in RETURN_COLS))
            locked = await bump_payment(conn, locked, at)
            await self._event(conn, locked, s, "split.return_created", ret)
        req = self.return_request(p, s, ret, line["account"])
        result: ShareReturnResult | None = None
        for i in range(self.RETURN_POLLS):
            try:
                result = await (adapter.return_share(req) if i == 0 else adapter.query_share_return(req))
            except ChannelError as e:
                self.engine.metrics.channel_errors.labels(adapter.name, "share", e.kind).inc()
                result = None
            if result is not None and result.status in (ShareStatus.SUCCEEDED, ShareStatus.FAILED):
                return await self.apply_return(ret.id, result)
            await asyncio.sleep(0.2 * (i + 1))
        return ret

    def return_request(self, p: Payment, s: Split, ret: SplitReturn, account: str) -> ShareReturnRequest:
        return ShareReturnRequest(out_return_no=ret.id, out_order_no=s.id, channel_order_no=s.channel_split_no,
                                  account=account, amount=ret.amount, description="退款前分账回退",
                                  sub_mch_id=p.sub_mch_id)

    async def apply_return(self, return_id: str, result: ShareReturnResult, *, reschedule: bool = False) -> SplitReturn:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(f"{RETURN_SELECT} where id = $1", return_id)
            assert row is not None
            split_row = await conn.fetchrow(f"{SPLIT_SELECT} where id = $1", row["split_id"])
            p = await lock_payment(conn, split_row["payment_id"])
            ret = SplitReturn(**dict(await conn.fetchrow(f"{RETURN_SELECT} where id = $1 for update", return_id)))
            if ret.status != "PROCESSING" or p is None:
                return ret
            split = _split(await conn.fetchrow(f"{SPLIT_SELECT} where id = $1 for update", ret.split_id))
            at = now()
            if result.status in (ShareStatus.SUCCEEDED, ShareStatus.FAILED):
                ret.status, ret.next_check_at, ret.updated_at = str(result.status), None, at
                if result.status is ShareStatus.FAILED:
                    ret.failure = {"code": "RETURN_FAILED", "channel_code": result.failure_code,
                                   "message": (result.failure_message or "")[:200]}
                else:
                    split.returned += ret.amount
                    for line in split.receivers:
                        if line["receiver_id"] == ret.receiver_id:
                            line["returned"] = line.get("returned", 0) + ret.amount
                    await conn.execute("update splits set returned = $2, receivers = $3, updated_at = $4 "
                                       "where id = $1", split.id, split.returned, split.receivers, at)
                await conn.execute("update split_returns set status = $2, failure = $3, updated_at = $4, "
                                   "next_check_at = null where id = $1", ret.id, ret.status, ret.failure, at)
                p = await bump_payment(conn, p, at)
                await self._event(conn, p, split, "split.returned" if ret.status == "SUCCEEDED"
                                  else "split.return_failed", ret)
            elif reschedule:
                ret.checks += 1
                ret.next_check_at = next_check(self.engine.adapters[p.channel], ret.checks)
                await conn.execute("update split_returns set checks = $2, next_check_at = $3 where id = $1",
                                   ret.id, ret.checks, ret.next_check_at)
        return ret

    # ----------------------------------------------------------------- recovery
    async def recover_split(self, split: Split) -> None:
        p = await self._payment(split.payment_id)
        adapter = self.engine.adapters.get(p.channel) if p else None
        if p is None or adapter is None:
            return
        req = self.share_request(p, split)
        try:
            res = await adapter.query_share(req)
            if res.status is ShareStatus.NOT_FOUND:
                # the request may never have arrived: the same out_order_no again is applied once
                res = await adapter.share(req)
        except ChannelError as e:
            self.engine.metrics.channel_errors.labels(p.channel, "share", e.kind).inc()
            res = ShareResult(ShareStatus.PROCESSING)
        self.engine.metrics.recovery_actions.labels(p.channel, "share").inc()
        await self.apply(split.id, res, reschedule=True)

    async def recover_return(self, ret: SplitReturn) -> None:
        split_row = await db(self.pool.fetchrow(f"{SPLIT_SELECT} where id = $1", ret.split_id))
        split = _split(split_row)
        p = await self._payment(split.payment_id)
        adapter = self.engine.adapters.get(p.channel) if p else None
        if p is None or adapter is None:
            return
        account = next((line["account"] for line in split.receivers if line["receiver_id"] == ret.receiver_id), "")
        req = self.return_request(p, split, ret, account)
        try:
            res = await adapter.query_share_return(req)
            if res.status is ShareStatus.NOT_FOUND:
                res = await adapter.return_share(req)
        except ChannelError as e:
            self.engine.metrics.channel_errors.labels(p.channel, "share", e.kind).inc()
            res = ShareReturnResult(ShareStatus.PROCESSING)
        await self.apply_return(ret.id, res, reschedule=True)

    async def _payment(self, payment_id: str) -> Payment | None:
        return await db(load_payment(self.pool, payment_id))


async def load_split(conn: Any, split_id: str) -> Split | None:
    row = await conn.fetchrow(f"{SPLIT_SELECT} where id = $1", split_id)
    return _split(row) if row else None


async def list_splits(conn: Any, *, payment_id: str | None = None, merchant_id: str | None = None,
                      status: str | None = None, limit: int = 50) -> list[Split]:
    """The newest splits first, optionally of one payment, one merchant and/or in one status."""
    rows = await conn.fetch(f"{SPLIT_SELECT} where ($1::text is null or payment_id = $1) and "
                            "($2::text is null or merchant_id = $2) and ($3::text is null or status = $3) "
                            "order by created_at desc limit $4", payment_id, merchant_id, status, limit)
    return [_split(r) for r in rows]


async def returns_of(conn: Any, split_id: str) -> list[SplitReturn]:
    rows = await conn.fetch(f"{RETURN_SELECT} where split_id = $1 order by created_at", split_id)
    return [SplitReturn(**dict(r)) for r in rows]
