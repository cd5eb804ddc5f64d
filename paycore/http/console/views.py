"""Pages both areas have, scoped by :attr:`Ctx.scope`: an operator sees every
merchant, a merchant user its own only (another merchant's payment is a 404,
recorded in the audit log as ``access.denied``).

Payments: search, CSV export, detail with its timeline, refunds and webhook
deliveries; refund and cancel through the same :class:`Engine` calls as the
API (the same idempotency, limits and state machine). One-code plates and
webhook deliveries: listed, and for those with the right, changed through
paycore.merchants.codes and paycore.ops.webhooks.
"""
from __future__ import annotations

import csv
import io
import secrets
from typing import Any

from aiohttp import web

from channels.base import Method
from channels.registry import ADAPTERS
from paycore.core import calls, search, validation
from paycore.core.journal import load_payment
from paycore.core.models import Payment, Status
from paycore.errors import InvalidRequest, NotFound, PaycoreError
from paycore.http.common import CONFIG, ENGINE
from paycore.http.console.base import Ctx
from paycore.http.onecode import parse_yuan
from paycore.merchants import codes
from paycore.merchants import store as merchants
from paycore.ops import webhooks

STATUSES = [str(s) for s in Status]
METHODS = [str(m) for m in Method]
CANCELLABLE = (Status.PENDING, Status.PROCESSING, Status.SUCCEEDED)
CSV_COLUMNS = ("id", "merchant_id", "merchant_order_no", "amount", "currency", "method", "channel", "status",
               "channel_trade_no", "refunded_amount", "created_at", "paid_at")


# ------------------------------------------------------------------ payments
async def payments(request: web.Request, ctx: Ctx) -> web.Response:
    f = search.parse_filter(request.query)
    async with ctx.pool.acquire() as conn:
        rows, nxt = await search.search(conn, f, scope=ctx.scope, after=request.query.get("after") or None)
    return ctx.render("console/payments.html", rows=rows, next=nxt, f=f, q=f.query(), channels=sorted(ADAPTERS),
                      methods=METHODS, statuses=STATUSES)


async def payments_csv(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """Every payment of the search (up to search.EXPORT_MAX), amounts in fen as the API has them."""
    f = search.parse_filter(request.query)
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                       "Content-Disposition": 'attachment; filename="payments.csv"'})
    await resp.prepare(request)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    async with ctx.pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):   # one snapshot for every page
            n = 0
            async for row in search.export(conn, f, scope=ctx.scope):
                w.writerow([_cell(row[c]) for c in CSV_COLUMNS])
                n += 1
                if n % 500 == 0:
                    await resp.write(buf.getvalue().encode())
                    buf.seek(0), buf.truncate()
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@") else s   # a spreadsheet must not run a cell as a formula


async def scoped_payment(ctx: Ctx, payment_id: str) -> Payment:
    """The payment, if this user may see it; a merchant user asking for another's gets NotFound, audited."""
    if ctx.scope is not None:
        try:
            return await ctx.request.app[ENGINE].get_payment(await ctx.merchant(ctx.scope), payment_id)
        except NotFound:
            await ctx.audit("access.denied", target=payment_id[:100], outcome="denied", merchant_id=ctx.scope,
                            reason="payment not found for this merchant")
            raise
    async with ctx.pool.acquire() as conn:
        p = await load_payment(conn, payment_id)
    if p is None:
        raise NotFound("no such payment")
    return p


async def _splits(conn: Any, payment_id: str) -> tuple[list[Any], dict[str, Any]]:
    """The payment's splits (each receiver's line with its status) and the receivers they name."""
    rows = await conn.fetch("select id, split_no, status, amount, finish, returned, receivers, failure, created_at, "
                            "updated_at from splits where payment_id = $1 order by created_at, id", payment_id)
    ids = sorted({line["receiver_id"] for r in rows for line in r["receivers"]})
    named = await conn.fetch("select id, receiver_no, type, account, name_masked, status from receivers "
                             "where id = any($1)", ids) if ids else []
    return rows, {r["id"]: r for r in named}


async def payment(request: web.Request, ctx: Ctx) -> web.Response:
    p = await scoped_payment(ctx, request.match_info["id"])
    async with ctx.pool.acquire() as conn:
        hist = await search.history(conn, p.id)
        hooks = await webhooks.listing(conn, payment_id=p.id, limit=100)
        splits, receivers = await _splits(conn, p.id)
        provider_calls = await calls.for_payment(conn, p.id)
    return ctx.render("console/payment.html", p=p, events=hist["events"], refunds=hist["refunds"], hooks=hooks,
                      calls=provider_calls, splits=splits, receivers=receivers, masked=masked_account,
                      refund_no="cs" + secrets.token_hex(12), refundable=p.amount - p.refund_reserved,
                      can_refund=ctx.user.can("payments.refund") and p.status is Status.SUCCEEDED
                      and p.amount > p.refund_reserved,
                      # the engine decides (a SUCCEEDED barcode payment may still be reversed the same day)
                      can_cancel=ctx.user.can("payments.cancel") and p.status in CANCELLABLE)


# ------------------------------------------------------------------- payouts
PAYOUT_STATUSES = ("PROCESSING", "SUCCEEDED", "FAILED", "RETURNED")
PAYOUT_PAGE = 100
_PAYOUT_LIST = ("select id, merchant_id, payout_no, amount, channel, destination_type, destination, name_masked, "
                "status, failure, created_at, updated_at from payouts "
                "where ($1::text is null or merchant_id = $1) and ($2::text is null or status = $2) "
                "and ($3::text is null or payout_no = $3) and ($4::text is null or id < $4) "
                "order by id desc limit $5")


def masked_account(value: str) -> str:
    """An account or openid shown by its ends only: enough to tell two apart, not to reuse one."""
    return value if len(value) <= 8 else f"{value[:4]}…{value[-4:]}"


async def payouts(request: web.Request, ctx: Ctx) -> web.Response:
    """Payouts, newest first (ids grow with time), by merchant (operators), status and payout_no."""
    q = request.query
    status = q.get("status") or None
    if status and status not in PAYOUT_STATUSES:
        raise InvalidRequest("unknown status", field="status")
    merchant = ctx.scope or (q.get("merchant_id") or None)   # a merchant user's filter cannot widen its scope
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(_PAYOUT_LIST, merchant, status, q.get("payout_no") or None, q.get("before") or None,
                                PAYOUT_PAGE)
    filt = {k: q.get(k) for k in ("status", "payout_no", "merchant_id") if q.get(k)}
    return ctx.render("console/payouts.html", rows=rows, statuses=PAYOUT_STATUSES, query=q, filt=filt,
                      next=rows[-1]["id"] if len(rows) == PAYOUT_PAGE else None, masked=masked_account)


async def payout(request: web.Request, ctx: Ctx) -> web.Response:
    payout_id = request.match_info["id"]
    async with ctx.pool.acquire() as conn:
        po = await conn.fetchrow("select id, merchant_id, payout_no, amount, currency, channel, destination_type, "
                                 "destination, name_masked, remark, status, channel_payout_no, failure, "
                                 "business_day, created_at, updated_at, next_check_at, checks from payouts "
                                 "where id = $1", payout_id)
        if po is None or (ctx.scope is not None and po["merchant_id"] != ctx.scope):
            if po is not None:
                await ctx.audit("access.denied", target=payout_id[:100], outcome="denied", merchant_id=ctx.scope,
                                reason="payout not found for this merchant")
            raise NotFound("no such payout")
        events = await conn.fetch("select seq, type, occurred_at from events where payment_id = $1 order by seq",
                                  po["id"])
        hooks = await webhooks.listing(conn, payment_id=po["id"], limit=100)
    return ctx.render("console/payout.html", po=po, events=events, hooks=hooks, masked=masked_account)


def _money_state(p: Payment) -> dict[str, Any]:
    return {"status": str(p.status), "amount": p.amount, "refunded_amount": p.refunded_amount,
            "refund_reserved": p.refund_reserved}


async def refund(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """A refund through Engine.create_refund, as the merchant API makes it. The form's refund_no
    was drawn when the page was rendered: a resubmitted form is the same refund, not a second."""
    p = await scoped_payment(ctx, request.match_info["id"])
    reason = ctx.field("reason", required=True, max_len=256)
    amount = parse_yuan(ctx.field("amount", required=True, max_len=20))
    req = validation.create_refund({"refund_no": ctx.field("refund_no", required=True, max_len=64),
                                    "amount": amount, "reason": reason})
    try:
        r, created = await request.app[ENGINE].create_refund(await ctx.merchant(p.merchant_id), p.id, req)
    except PaycoreError as e:
        await ctx.audit("payment.refund", target=p.id, outcome="failed", merchant_id=p.merchant_id,
                        reason=f"{reason} ({e.code}: {e.message})", before=_money_state(p),
                        after={"amount": amount})
        raise
    after = await scoped_payment(ctx, p.id)
    if created:
        await ctx.audit("payment.refund", target=p.id, merchant_id=p.merchant_id, reason=reason,
                        before=_money_state(p), after={**_money_state(after), "refund": r.to_api()})
    return ctx.done(f"/payments/{p.id}", "Refund created.")


async def cancel(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    p = await scoped_payment(ctx, request.match_info["id"])
    reason = ctx.field("reason", required=True, max_len=256)
    try:
        after = await request.app[ENGINE].cancel(await ctx.merchant(p.merchant_id), p.id)
    except PaycoreError as e:
        await ctx.audit("payment.cancel", target=p.id, outcome="failed", merchant_id=p.merchant_id,
                        reason=f"{reason} ({e.code}: {e.message})", before=_money_state(p))
        raise
    await ctx.audit("payment.cancel", target=p.id, merchant_id=p.merchant_id, reason=reason, before=_money_state(p),
                    after=_money_state(after))
    return ctx.done(f"/payments/{p.id}", "Payment cancelled.")


# ------------------------------------------------------------ one-code plates
async def code_list(request: web.Request, ctx: Ctx) -> web.Response:
    async with ctx.pool.acquire() as conn:
        rows = await codes.list_codes(conn, ctx.scope or (request.query.get("merchant_id") or None))
    base = request.app[CONFIG].server.public_base_url
    return ctx.render("console/codes.html", codes=rows, urls={c.code: codes.public_url(base, c.code) for c in rows})


async def code_qr(request: web.Request, ctx: Ctx) -> web.Response:
    code, kind = request.match_info["code"], request.match_info["kind"]
    async with ctx.pool.acquire() as conn:
        c = await codes.load_code(conn, code)
    if c is None or (ctx.scope is not None and c.merchant_id != ctx.scope):
        raise NotFound("no such code")
    url = codes.public_url(request.app[CONFIG].server.public_base_url, c.code)
    body = codes.qr_bytes(url, kind, title=f"{c.merchant_name} · {url}")
    return web.Response(body=body, content_type={"png": "image/png", "pdf": "application/pdf"}[kind],
                        headers={"Content-Disposition": f'attachment; filename="{c.code}.{kind}"'})


async def code_add(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    merchant_id = ctx.field("merchant_id", required=True, max_len=64)
    amount = ctx.field("amount", max_len=20)
    try:
        async with ctx.pool.acquire() as conn:
            c = await codes.add_code(conn, merchant_id, ctx.field("store_id", max_len=32) or None,
                                     code=ctx.field("code", max_len=100) or None,
                                     amount=parse_yuan(amount) if amount else None)
    except (LookupError, ValueError) as e:
        raise InvalidRequest(str(e)) from None
    await ctx.audit("code.create", target=c.code, merchant_id=c.merchant_id,
                    after={"code": c.code, "store_id": c.store_id, "amount": c.amount, "status": c.status})
    return ctx.done("/codes", "Code created.")


async def code_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    code = request.match_info["code"]
    status = "disabled" if request.match_info["op"] == "disable" else "active"
    async with ctx.pool.acquire() as conn:
        before = await codes.load_code(conn, code)
        if before is None:
            raise NotFound("no such code")
        await codes.set_code_status(conn, code, status)
    await ctx.audit(f"code.{request.match_info['op']}", target=code, merchant_id=before.merchant_id,
                    before={"status": before.status}, after={"status": status})
    return ctx.done("/codes", "Code disabled." if status == "disabled" else "Code enabled.")


# ------------------------------------------------------------------- webhooks
async def webhook_list(request: web.Request, ctx: Ctx) -> web.Response:
    status = request.query.get("status") or None
    if status and status not in webhooks.STATUSES:
        raise InvalidRequest("unknown status", field="status")
    pid = (request.query.get("payment_id") or "").strip() or None
    async with ctx.pool.acquire() as conn:
        rows = await webhooks.listing(conn, status=status, payment_id=pid,
                                      merchant_id=ctx.scope or (request.query.get("merchant_id") or None), limit=100)
        m = await merchants.get(conn, ctx.scope) if ctx.scope is not None else None
    endpoints = sorted({r["url"] for r in rows})
    return ctx.render("console/webhooks.html", rows=rows, statuses=webhooks.STATUSES, endpoints=endpoints,
                      default_notify_url=m["default_notify_url"] if m else None)


async def webhook_replay(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    try:
        wid = int(request.match_info["wid"])
    except ValueError:
        raise NotFound("no such webhook") from None
    async with ctx.pool.acquire() as conn:
        before = await conn.fetchrow("select id, merchant_id, payment_id, status, attempts, replays from webhooks "
                                     "where id = $1", wid)
        if before is None:
            raise NotFound("no such webhook")
        await webhooks.replay(conn, ids=[wid])
        after = await conn.fetchrow("select status, attempts, replays from webhooks where id = $1", wid)
    await ctx.audit("webhook.replay", target=str(wid), merchant_id=before["merchant_id"], before=dict(before),
                    after=dict(after))
    return ctx.done("/webhooks", "Replayed.")
