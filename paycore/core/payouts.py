"""Payouts (转账/代付): money from the merchant to a person's wallet or an account.

Intent before side effect: the payout is committed PROCESSING (event
``payout.created``, a next check) under the merchant's daily limit before the
channel is called; the channel dedupes on the payout id, so recovery
(:mod:`paycore.core.afterrecovery`) queries it and, when the channel has no
such transfer, sends the same request again. Only the channel's final answer
ends a payout: SUCCEEDED, FAILED (nothing left the merchant) or RETURNED
(credited, then bounced back). A timeout, a 5xx, an unreadable answer keep it
PROCESSING.

The payee's real name is checked by the channels that can; it is kept only
sealed under the master key (to send the same request again) and masked
anywhere it could be shown or logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import asyncpg

from channels.base import Ack, ChannelAdapter, ChannelError, Flow, NotificationRejected, UnsupportedFlow
from channels.transfers import PayoutRequest, PayoutResult, PayoutStatus, mask_name
from paycore.config import Config
from paycore.core.afterlog import db, next_check, write_event
from paycore.core.engine import Engine
from paycore.core.models import new_id, now
from paycore.core.validation import CreatePayout
from paycore.errors import AmountLimitExceeded, IdempotencyConflict, NotFound, UnsupportedMethod
from paycore.merchants.auth import Merchant, SecretBox

log = logging.getLogger("paycore.payouts")

#: business days are Asia/Shanghai days (no DST)
SHANGHAI = timezone(timedelta(hours=8))

PAYOUT_COLS = ("id", "merchant_id", "payout_no", "fingerprint", "amount", "currency", "channel", "destination_type",
               "destination", "name_masked", "remark", "notify_url", "status", "channel_payout_no", "failure",
               "business_day", "seq", "created_at", "updated_at", "next_check_at", "checks")
PAYOUT_SELECT = f"select {', '.join(PAYOUT_COLS)} from payouts"
FINAL = frozenset({"SUCCEEDED", "FAILED", "RETURNED"})


@dataclass(slots=True)
class Payout:
    id: str
    merchant_id: str
    payout_no: str
    fingerprint: str
    amount: int
    currency: str
    channel: str
    destination_type: str
    destination: str
    name_masked: str | None
    remark: str | None
    notify_url: str | None
    status: str
    channel_payout_no: str | None
    failure: dict[str, Any] | None
    business_day: date
    seq: int
    created_at: datetime
    updated_at: datetime
    next_check_at: datetime | None = None
    checks: int = 0

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "payout_no": self.payout_no, "amount": self.amount, "channel": self.channel,
                "status": self.status, "failure": self.failure, "created_at": self.created_at,
                "updated_at": self.updated_at}

    def event_body(self) -> dict[str, Any]:
        return {"payout": dict(self.to_api(), currency=self.currency,
                               destination={"type": self.destination_type, "value": self.destination,
                                            "name": self.name_masked})}


def _payout(row: Any) -> Payout:
    return Payout(**dict(row))


class Payouts:
    def __init__(self, engine: Engine, cfg: Config, box: SecretBox) -> None:
        self.engine = engine
        self.pool = engine.pool
        self.cfg = cfg
        self.box = box
        self.notify_base = cfg.server.public_base_url.rstrip("/")

    async def get(self, merchant: Merchant, payout_id: str) -> Payout:
        row = await db(self.pool.fetchrow(f"{PAYOUT_SELECT} where id = $1", payout_id))
        if row is None or row["merchant_id"] != merchant.id:
            raise NotFound("no such payout")
        return _payout(row)

    async def find(self, merchant: Merchant, payout_no: str) -> Payout:
        row = await db(self.pool.fetchrow(f"{PAYOUT_SELECT} where merchant_id = $1 and payout_no = $2",
                                                merchant.id, payout_no))
        if row is None:
            raise NotFound("no such payout")
        return _payout(row)

    async def create(self, merchant: Merchant, req: CreatePayout) -> tuple[Payout, bool]:
        existing = await db(self.pool.fetchrow(
            f"{PAYOUT_SELECT} where merchant_id = $1 and payout_no = $2", merchant.id, req.payout_no))
        if existing is not None:
            return self._same(_payout(existing), req), False
        adapter = self.engine.adapter_for(req.channel)
        if Flow.PAYOUT not in adapter.flows:
            raise UnsupportedMethod(f"{req.channel} does not support payouts", field="channel")
        if req.destination_type not in getattr(adapter, "payout_types", ()):
            raise UnsupportedMethod(f"{req.channel} does not pay out to a destination of type "
                                    f"{req.destination_type}", field="destination.type")
        limits = self.cfg.payments
        if req.amount > limits.payout_max_amount:
            raise AmountLimitExceeded(f"a payout may be at most {limits.payout_max_amount} fen", field="amount")
        at = now()
        po = Payout(id=new_id("po"), merchant_id=merchant.id, payout_no=req.payout_no, fingerprint=req.fingerprint,
                    amount=req.amount, currency="CNY", channel=req.channel, destination_type=req.destination_type,
                    destination=req.destination, name_masked=mask_name(req.name), remark=req.remark,
                    notify_url=req.notify_url, status="PROCESSING", channel_payout_no=None, failure=None,
                    business_day=at.astimezone(SHANGHAI).date(), seq=1, created_at=at, updated_at=at,
                    next_check_at=next_check(adapter, 0))
        name_enc = self.box.seal(merchant.id, req.name) if req.name else None
        try:
            inserted = await db(self._commit_new(po, name_enc, limits.payout_daily_limit))
        except asyncpg.UniqueViolationError:
            inserted = False
        if not inserted:
            again = await db(self.pool.fetchrow(
                f"{PAYOUT_SELECT} where merchant_id = $1 and payout_no = $2", merchant.id, req.payout_no))
            assert again is not None
            return self._same(_payout(again), req), False
        return await self._send(adapter, po, req.name), True

    def _same(self, existing: Payout, req: CreatePayout) -> Payout:
        if existing.fingerprint != req.fingerprint:
            raise IdempotencyConflict("payout_no was already used with different fields", field="payout_no")
        return existing

    async def _commit_new(self, po: Payout, name_enc: bytes | None, daily_limit: int) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            # one merchant's payouts of a day are counted one at a time, so two concurrent payouts
            # cannot both fit under the limit the other one fills
            await conn.execute("select pg_advisory_xact_lock(hashtext('payouts:' || $1))", po.merchant_id)
            if await conn.fetchval("select true from payouts where merchant_id = $1 and payout_no = $2",
                                   po.merchant_id, po.payout_no):
                return False
            used = await conn.fetchval("select coalesce(sum(amount), 0)::bigint from payouts where merchant_id = $1 "
                                       "and business_day = $2 and status <> 'FAILED'", po.merchant_id, po.business_day)
            if used + po.amount > daily_limit:
                raise AmountLimitExceeded(f"this payout would exceed the daily payout limit "
                                          f"({daily_limit - used} fen left today)", field="amount")
            await conn.execute(f"insert into payouts ({', '.join(PAYOUT_COLS)}, name_enc) values "
                               f"({', '.join(f'${i + 1}' for i in range(len(PAYOUT_COLS) + 1))})",
                               *(getattr(po, c) for c in PAYOUT_COLS), name_enc)
            await write_event(conn, stream_id=po.id, seq=po.seq, etype="payout.created", at=po.created_at,
                              body=po.event_body(), merchant_id=po.merchant_id, notify_url=po.notify_url)
        return True

    def request(self, po: Payout, name: str | None) -> PayoutRequest:
        return payout_request(po, name, self.notify_base)

    async def _send(self, adapter: ChannelAdapter, po: Payout, name: str | None) -> Payout:
        try:
            result = await adapter.payout(self.request(po, name))
        except ChannelError as e:
            self.engine.metrics.channel_errors.labels(po.channel, "payout", e.kind).inc()
            if e.retriable:
                return po          # outcome unknown: PROCESSING, recovery asks the channel
            result = PayoutResult(PayoutStatus.FAILED, failure_code="CHANNEL_REFUSED", failure_message=str(e))
        except UnsupportedFlow as e:
            result = PayoutResult(PayoutStatus.FAILED, failure_code="UNSUPPORTED", failure_message=str(e))
        return await self.apply(po.id, result)

    async def apply(self, payout_id: str, result: PayoutResult, *, reschedule: bool = False) -> Payout:
        async with self.pool.acquire() as conn:
            return await apply_result(conn, payout_id, result, adapters=self.engine.adapters if reschedule else None)

    async def handle_notification(self, channel: str, headers: Any, body: bytes) -> Ack:
        """A channel's payout notification (``POST /notify/{channel}/payout``): verified by the adapter,
        then applied through :meth:`apply` exactly like recovery's query answer, so a duplicate, or a
        notice that loses the race with a query, changes nothing. Anything that does not verify or
        names no payout of that channel gets the provider's failure answer and changes nothing."""
        adapter = self.engine.adapters.get(channel)
        if adapter is None:
            raise NotFound("unknown channel")
        metrics = self.engine.metrics
        try:
            try:
                note = await adapter.parse_payout_notification(headers, body)
            except (NotificationRejected, UnsupportedFlow):
                raise
            except Exception as e:
                # anyone can post anything here: a parser that trips over it is a rejection, not a 500
                log.warning("payout notification from %s could not be parsed (%s)", channel, type(e).__name__)
                raise NotificationRejected("malformed") from None
            row = await db(self.pool.fetchrow(f"{PAYOUT_SELECT} where id = $1", note.out_no))
            if row is None or row["channel"] != channel:
                raise NotificationRejected("unknown_order")
            s = adapter.settings
            if note.merchant_ref is not None and note.merchant_ref not in {s.mch_id, s.app_id} - {None, ""}:
                raise NotificationRejected("merchant_mismatch")
            if note.amount is not None and note.amount != row["amount"]:
                raise NotificationRejected("amount_mismatch")
            await self.apply(row["id"], note.result)
        except NotificationRejected as e:
            metrics.notifications_rejected.labels(channel, e.reason).inc()
            metrics.notifications.labels(channel, "payout", "rejected").inc()
            log.warning("payout notification from %s rejected: %s", channel, e.reason)
            return adapter.ack(False)
        except UnsupportedFlow:
            metrics.unsupported_flows.labels(channel, "notify").inc()
            raise NotFound("this channel sends no payout notifications") from None
        metrics.notifications.labels(channel, "payout", "applied").inc()
        return adapter.ack(True)

    async def recover(self, po: Payout) -> None:
        adapter = self.engine.adapters.get(po.channel)
        if adapter is None or po.status in FINAL:
            return
        name = None
        enc = await db(self.pool.fetchval("select name_enc from payouts where id = $1", po.id))
        if enc is not None:
            name = self.box.open(po.merchant_id, enc).get_bytes().decode()
        req = self.request(po, name)
        try:
            res = await adapter.query_payout(req)
            if res.status is PayoutStatus.NOT_FOUND:
                # never proof the transfer will not happen: the same out number again is applied once
                res = await adapter.payout(req)
        except ChannelError as e:
            self.engine.metrics.channel_errors.labels(po.channel, "payout", e.kind).inc()
            res = PayoutResult(PayoutStatus.PROCESSING)
        self.engine.metrics.recovery_actions.labels(po.channel, "payout").inc()
        await self.apply(po.id, res, reschedule=True)


async def apply_result(conn: Any, payout_id: str, result: PayoutResult, *,
                       adapters: dict[str, ChannelAdapter] | None = None) -> Payout:
    """Record what the channel said about a payout, in one transaction on ``conn``: a final answer
    ends it with its event (and webhook); with ``adapters`` an open one gets its next check (the
    channel's back-off). What recovery, notifications and ``paycore payout requery`` all apply."""
    async with conn.transaction():
        po = _payout(await conn.fetchrow(f"{PAYOUT_SELECT} where id = $1 for update", payout_id))
        at = now()
        target = {PayoutStatus.SUCCEEDED: "SUCCEEDED", PayoutStatus.FAILED: "FAILED",
                  PayoutStatus.RETURNED: "RETURNED"}.get(result.status)
        # SUCCEEDED may still become RETURNED (退票); every other final status stays
        if target is not None and (po.status == "PROCESSING"
                                   or (po.status == "SUCCEEDED" and target == "RETURNED")):
            po.status, po.updated_at, po.next_check_at, po.seq = target, at, None, po.seq + 1
            if result.channel_payout_no:
                po.channel_payout_no = result.channel_payout_no
            if target != "SUCCEEDED":
                po.failure = {"code": "PAYOUT_" + target, "channel_code": result.failure_code,
                              "message": (result.failure_message or result.failure_code or "")[:200]}
            await conn.execute("update payouts set status = $2, channel_payout_no = $3, failure = $4, seq = $5, "
                               "updated_at = $6, next_check_at = null where id = $1", po.id, po.status,
                               po.channel_payout_no, po.failure, po.seq, at)
            await write_event(conn, stream_id=po.id, seq=po.seq, etype=f"payout.{target.lower()}", at=at,
                              body=po.event_body(), merchant_id=po.merchant_id, notify_url=po.notify_url)
        elif po.status == "PROCESSING" and adapters is not None:
            po.checks += 1
            po.next_check_at = next_check(adapters[po.channel], po.checks)
            await conn.execute("update payouts set checks = $2, next_check_at = $3, channel_payout_no = "
                               "coalesce($4, channel_payout_no) where id = $1", po.id, po.checks,
                               po.next_check_at, result.channel_payout_no)
    return po


def payout_request(po: Payout, name: str | None, notify_base: str) -> PayoutRequest:
    """What the channel is sent for ``po`` (the same every time: the channel dedupes on the id)."""
    return PayoutRequest(out_no=po.id, amount=po.amount, destination_type=po.destination_type,
                         account=po.destination, remark=po.remark or "payout", name=name,
                         notify_url=f"{notify_base}/notify/{po.channel}/payout")


async def load(conn: Any, payout_id: str) -> Payout | None:
    row = await conn.fetchrow(f"{PAYOUT_SELECT} where id = $1", payout_id)
    return _payout(row) if row else None


async def listing(conn: Any, *, merchant_id: str | None = None, status: str | None = None,
                  limit: int = 50) -> list[Payout]:
    """The newest payouts first, optionally of one merchant and/or in one status."""
    rows = await conn.fetch(f"{PAYOUT_SELECT} where ($1::text is null or merchant_id = $1) and "
                            "($2::text is null or status = $2) order by created_at desc limit $3",
                            merchant_id, status, limit)
    return [_payout(r) for r in rows]


async def query_once(conn: Any, adapter: ChannelAdapter, po: Payout) -> tuple[PayoutResult, Payout]:
    """Ask the channel about ``po`` once and apply a final answer (an operator's requery: it never
    sends the transfer again, recovery does that). ChannelError when the channel cannot say."""
    result = await adapter.query_payout(payout_request(po, None, ""))
    return result, await apply_result(conn, po.id, result)
