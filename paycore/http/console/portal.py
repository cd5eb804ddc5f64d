"""The merchant portal's own pages (``/portal/``): daily statements and API
credentials. Payments, plates and webhook deliveries are the shared pages of
paycore.http.console.views, scoped to the user's merchant; the merchant's default
webhook endpoint is set here (shown on the shared webhooks page with its deliveries)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta, timezone

from aiohttp import web

from paycore.core import search, validation
from paycore.errors import InvalidRequest
from paycore.http.common import CONFIG
from paycore.http.console.base import Ctx
from paycore.http.console.operator import GRACE_CHOICES, rotate
from paycore.merchants import store as merchants

STATEMENT_DAYS = 31

_DAYS_SQL = """
select (paid_at at time zone 'UTC')::date as day, count(*) as payments, sum(amount) as amount
from payments where merchant_id = $1 and created_at >= $2 and paid_at >= $3 and status = 'SUCCEEDED'
group by 1
"""
_REFUND_DAYS_SQL = """
select (updated_at at time zone 'UTC')::date as day, count(*) as refunds, sum(amount) as amount
from refunds where merchant_id = $1 and status = 'SUCCEEDED' and updated_at >= $2 group by 1
"""


async def statements(request: web.Request, ctx: Ctx) -> web.Response:
    assert ctx.scope is not None
    first = datetime.now(timezone.utc).date() - timedelta(days=STATEMENT_DAYS - 1)
    start = datetime.combine(first, time(0), tzinfo=timezone.utc)
    async with ctx.pool.acquire() as conn:
        # a payment is paid at most max_expire_in (7 days) after it was created: the bound keeps the index path
        pays = {r["day"]: r for r in await conn.fetch(_DAYS_SQL, ctx.scope, start - timedelta(days=8), start)}
        refs = {r["day"]: r for r in await conn.fetch(_REFUND_DAYS_SQL, ctx.scope, start)}
    days = [first + timedelta(days=i) for i in range(STATEMENT_DAYS)][::-1]
    rows = [{"day": d, "payments": pays[d]["payments"] if d in pays else 0,
             "paid": pays[d]["amount"] if d in pays else 0, "refunds": refs[d]["refunds"] if d in refs else 0,
             "refunded": refs[d]["amount"] if d in refs else 0} for d in days]
    return ctx.render("console/statements.html", rows=rows)


async def statement_csv(request: web.Request, ctx: Ctx) -> web.Response:
    """One day's statement: each payment paid and each refund that succeeded that UTC day, amounts in fen."""
    assert ctx.scope is not None
    try:
        day = date.fromisoformat(request.match_info["day"])
    except ValueError:
        raise InvalidRequest("a statement's day is YYYY-MM-DD", field="day") from None
    async with ctx.pool.acquire() as conn:
        pays, refs = await search.day_statement(conn, ctx.scope, day)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("type", "id", "payment_id", "merchant_order_no", "refund_no", "channel", "method", "amount",
                "status", "channel_trade_no", "at"))
    for p in pays:
        w.writerow(("payment", p["id"], p["id"], p["merchant_order_no"], "", p["channel"], p["method"], p["amount"],
                    p["status"], p["channel_trade_no"] or "", p["paid_at"].isoformat()))
    for r in refs:
        w.writerow(("refund", r["id"], r["payment_id"], "", r["refund_no"], "", "", r["amount"], "SUCCEEDED",
                    r["channel_refund_no"] or "", r["updated_at"].isoformat()))
    # net of the day: what was paid and stayed paid, less what was refunded (a reversal returned it all)
    net = sum(p["amount"] for p in pays if p["status"] == "SUCCEEDED") - sum(r["amount"] for r in refs)
    w.writerow(("net", "", "", "", "", "", "", net, "", "", ""))
    return web.Response(body=buf.getvalue().encode(), headers={
        "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="statement-{ctx.scope}-{day.isoformat()}.csv"'})


async def credentials(request: web.Request, ctx: Ctx, secret: str | None = None) -> web.Response:
    """The merchant id, whether the secret replaced last still works (and until when), the rotate form."""
    assert ctx.scope is not None
    async with ctx.pool.acquire() as conn:
        previous_until = await merchants.previous_secret_until(conn, ctx.scope)
    return ctx.render("console/credentials.html", secret=secret, previous_until=previous_until,
                      graces=GRACE_CHOICES)


async def credentials_rotate(request: web.Request, ctx: Ctx) -> web.Response:
    assert ctx.scope is not None
    rot = await rotate(ctx, ctx.scope)
    return await credentials(request, ctx, rot.secret)


async def endpoint_save(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """The merchant's default webhook endpoint (empty clears it), checked as the API checks a
    payment's notify_url; payments created without notify_url from now on are notified there."""
    assert ctx.scope is not None
    raw = ctx.field("notify_url", max_len=512)
    w = request.app[CONFIG].webhooks
    url = validation.notify_url(raw, allow_http=w.allow_http, allow_private=w.allow_private) if raw else None
    async with ctx.pool.acquire() as conn:
        before = await merchants.set_notify_url(conn, ctx.scope, url)
    await ctx.audit("merchant.notify_url", target=ctx.scope, merchant_id=ctx.scope,
                    before={"default_notify_url": before}, after={"default_notify_url": url})
    return ctx.done("/webhooks", "Webhook endpoint saved.")
