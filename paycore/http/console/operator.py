"""The operators' pages (``/console/``): overview, reconciliation, merchants,
channels, the audit log and users. Each write goes through the same store
function as the ``paycore`` command that does it, and into the audit log."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

import asyncpg
from aiohttp import web

from channels.base import ChannelError, UnsupportedFlow
from channels.registry import ADAPTERS
from paycore import metrics
from paycore.core import attention
from paycore.errors import InvalidRequest, NotFound, PaycoreError
from paycore.http.common import AUTH, CONFIG, ENGINE
from paycore.http.console.base import Ctx
from paycore.merchants import auditlog, users
from paycore.merchants import store as merchants
from paycore.ops import reconcile

BREAKER = ("closed", "half_open", "open")

_TODAY_SQL = """
select channel, count(*) as total,
       count(*) filter (where status = 'SUCCEEDED') as succeeded,
       count(*) filter (where status in ('SUCCEEDED', 'FAILED', 'CLOSED', 'REVERSED')) as final,
       count(*) filter (where created_at >= now() - interval '5 minutes') as recent,
       count(*) filter (where status = 'FAILED' and failure->>'code' in ('CHANNEL_ERROR', 'CHANNEL_UNAVAILABLE'))
           as channel_failed
from payments where created_at >= $1 group by channel order by channel
"""


def _midnight() -> datetime:
    return datetime.combine(datetime.now(timezone.utc).date(), time(0), tzinfo=timezone.utc)


async def _today(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(_TODAY_SQL, _midnight())]


def _breakers(request: web.Request) -> dict[str, str]:
    return {name: BREAKER[b.state] for name, b in request.app[ENGINE].breakers.items()}


def figures(per_channel: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """The overview's rates from today's per-channel counts (``_TODAY_SQL``), ``elapsed`` seconds
    since midnight UTC: payments per second today and over the last 5 minutes (Grafana:
    rate(paycore_payments_created_total)), and each channel's success rate, succeeded / final
    (Grafana: paycore_payments_final_total{status="SUCCEEDED"} / all final), None before any is final."""
    total = sum(r["total"] for r in per_channel)
    return {"total": total, "per_second": f"{total / max(elapsed, 1.0):.2f}",
            "recent_per_second": f"{sum(r['recent'] for r in per_channel) / 300:.2f}",
            "success": {r["channel"]: (f"{100 * r['succeeded'] / r['final']:.1f} %" if r["final"] else None)
                        for r in per_channel}}


async def overview(request: web.Request, ctx: Ctx) -> web.Response:
    async with ctx.pool.acquire() as conn:
        per_channel = await _today(conn)
        state = await metrics.read_state(conn)   # the same query as the Sampler's gauges
        attention_open = sum((await attention.open_counts(conn)).values())
    elapsed = (datetime.now(timezone.utc) - _midnight()).total_seconds()
    return ctx.render("console/overview.html", per_channel=per_channel, **figures(per_channel, elapsed),
                      breakers=_breakers(request), state=state, relay_lag=f"{float(state['outbox_age']):.1f}",
                      attention_open=attention_open)


# ------------------------------------------------------------- reconciliation
async def reconciliation(request: web.Request, ctx: Ctx) -> web.Response:
    async with ctx.pool.acquire() as conn:
        runs = await conn.fetch("select * from reconciliation_runs order by id desc limit 100")
    return ctx.render("console/reconciliation.html", runs=runs, channels=sorted(request.app[CONFIG].channels),
                      today=datetime.now(timezone.utc).date().isoformat())


async def reconciliation_run(request: web.Request, ctx: Ctx) -> web.Response:
    try:
        run_id = int(request.match_info["run"])
    except ValueError:
        raise NotFound("no such run") from None
    async with ctx.pool.acquire() as conn:
        run = await conn.fetchrow("select * from reconciliation_runs where id = $1", run_id)
        if run is None:
            raise NotFound("no such run")
        items = await conn.fetch("select * from reconciliation_items where run_id = $1 order by result, out_trade_no "
                                 "limit 1000", run_id)
    return ctx.render("console/reconciliation_run.html", run=run, items=items)


async def reconciliation_start(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """``paycore reconcile --channel X --date D`` from the console: the same reconcile.run."""
    channel = ctx.field("channel", required=True, max_len=32)
    try:
        day = date.fromisoformat(ctx.field("day", required=True, max_len=10))
    except ValueError:
        raise InvalidRequest("day must be YYYY-MM-DD", field="day") from None
    try:
        rep = await reconcile.run(request.app[CONFIG], channel, day)
    except LookupError as e:
        raise InvalidRequest(str(e), field="channel") from None
    except (ChannelError, UnsupportedFlow) as e:
        await ctx.audit("reconcile.run", target=f"{channel}/{day}", outcome="failed", reason=type(e).__name__)
        raise InvalidRequest(f"the statement of {channel} for {day} could not be fetched ({type(e).__name__})") \
            from None
    await ctx.audit("reconcile.run", target=f"{channel}/{day}", after={"run_id": rep.run_id, **rep.counts})
    return ctx.done(f"/reconciliation/{rep.run_id}", "ok")


# ------------------------------------------------------------------ merchants
def _subs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        ch, sep, sub = line.partition("=")
        if not sep or ch.strip() not in ADAPTERS or not sub.strip():
            raise InvalidRequest(f"sub-merchant ids are lines of channel=id (bad line {line[:40]!r})",
                                 field="sub_merchants")
        out[ch.strip()] = sub.strip()[:64]
    return out


def _opt_int(ctx: Ctx, name: str) -> int | None:
    v = ctx.field(name, max_len=20)
    if not v:
        return None
    if not v.isdigit():
        raise InvalidRequest(f"{name} must be a whole number", field=name)
    return int(v)


def _opt_rate(ctx: Ctx) -> float | None:
    v = ctx.field("rate_limit", max_len=20)
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise InvalidRequest("rate_limit must be a number", field="rate_limit") from None


async def merchant_list(request: web.Request, ctx: Ctx) -> web.Response:
    async with ctx.pool.acquire() as conn:
        rows = await merchants.listing(conn)
    return ctx.render("console/merchants.html", merchants=rows)


async def merchant_page(request: web.Request, ctx: Ctx) -> web.Response:
    return await show_merchant(ctx, request.match_info["mid"])


async def show_merchant(ctx: Ctx, mid: str, *, secret: str | None = None) -> web.Response:
    """The merchant's page; ``secret``: a new API secret, shown this once."""
    async with ctx.pool.acquire() as conn:
        m = await merchants.get(conn, mid)
        previous_until = await merchants.previous_secret_until(conn, mid) if m else None
    if m is None:
        raise NotFound("no such merchant")
    return ctx.render("console/merchant.html", m=m, secret=secret,
                      previous_until=previous_until, graces=GRACE_CHOICES,
                      subs="\n".join(f"{k}={v}" for k, v in sorted((m["sub_merchants"] or {}).items())))


async def merchant_create(request: web.Request, ctx: Ctx) -> web.Response:
    mid = ctx.field("id", required=True, max_len=64)
    name = ctx.field("name", max_len=200) or mid
    box = request.app[AUTH].merchants.box
    try:
        async with ctx.pool.acquire() as conn:
            secret = await merchants.add(conn, box, mid, name, max_amount=_opt_int(ctx, "max_amount"),
                                         rate_limit=_opt_rate(ctx))
    except ValueError as e:
        raise InvalidRequest(str(e), field="id") from None
    except asyncpg.UniqueViolationError:
        raise InvalidRequest(f"merchant {mid} already exists", field="id") from None
    await ctx.audit("merchant.create", target=mid, merchant_id=mid, after={"id": mid, "name": name})
    return await show_merchant(ctx, mid, secret=secret)


async def merchant_update(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    mid = request.match_info["mid"]
    async with ctx.pool.acquire() as conn:
        before = await merchants.get(conn, mid)
        if before is None:
            raise NotFound("no such merchant")
        try:
            after = await merchants.update(conn, mid, name=ctx.field("name", required=True, max_len=200),
                                           max_amount=_opt_int(ctx, "max_amount"),
                                           sub_merchants=_subs(ctx.field("sub_merchants", max_len=4000)),
                                           rate_limit=_opt_rate(ctx))
        except ValueError as e:
            raise InvalidRequest(str(e)) from None
    await ctx.audit("merchant.update", target=mid, merchant_id=mid, before=before, after=after)
    return ctx.done(f"/merchants/{mid}", "Merchant saved.")


async def merchant_status(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    mid, op = request.match_info["mid"], request.match_info["op"]
    status = "disabled" if op == "disable" else "active"
    async with ctx.pool.acquire() as conn:
        before = await merchants.get(conn, mid)
        if before is None:
            raise NotFound("no such merchant")
        await merchants.set_status(conn, mid, status)
    await ctx.audit(f"merchant.{op}", target=mid, merchant_id=mid, before={"status": before["status"]},
                    after={"status": status})
    return ctx.done(f"/merchants/{mid}", "Merchant disabled." if op == "disable" else "Merchant enabled.")


#: the grace periods the rotate forms offer: how long the replaced secret keeps working, so that a
#: merchant's systems can move to the new one without a minute of refused requests
GRACE_CHOICES = ("0", "1h", "24h", "7d")


async def rotate(ctx: Ctx, mid: str) -> merchants.Rotation:
    """A new API secret for ``mid`` through the store's rotate_secret (shown once, never audited);
    the form's ``grace`` says how long the old one keeps working (0: it stops now)."""
    choice = ctx.field("grace", max_len=8) or "0"
    if choice not in GRACE_CHOICES:
        raise InvalidRequest(f"grace is one of {', '.join(GRACE_CHOICES)}", field="grace")
    grace = merchants.parse_grace(choice)
    async with ctx.pool.acquire() as conn:
        try:
            rot = await merchants.rotate_secret(conn, ctx.request.app[AUTH].merchants.box, mid, grace)
        except LookupError:
            raise NotFound("no such merchant") from None
    await ctx.audit("merchant.rotate_secret", target=mid, merchant_id=mid,
                    after={"rotated": True, "kid": rot.kid, "grace_seconds": grace,
                           "previous_expires_at": rot.previous_expires_at.isoformat()
                           if rot.previous_expires_at else None})
    return rot


async def merchant_rotate(request: web.Request, ctx: Ctx) -> web.Response:
    rot = await rotate(ctx, request.match_info["mid"])
    return await show_merchant(ctx, request.match_info["mid"], secret=rot.secret)


# ------------------------------------------------------------------- channels
async def channels(request: web.Request, ctx: Ctx) -> web.Response:
    cfg = request.app[CONFIG]
    async with ctx.pool.acquire() as conn:
        today = {r["channel"]: r for r in await _today(conn)}
    breakers = _breakers(request)
    rows = []
    for name, cls in sorted(ADAPTERS.items()):
        t = today.get(name)
        rows.append({"name": name, "enabled": name in cfg.channels and cfg.channels[name].enabled,
                     "methods": sorted(str(m) for m in cls.methods), "flows": sorted(str(f) for f in cls.flows),
                     "breaker": breakers.get(name, "-"), "calls": t["total"] if t else 0,
                     "failed": t["channel_failed"] if t else 0})
    return ctx.render("console/channels.html", rows=rows)


# ------------------------------------------------------------------ audit log
async def audit(request: web.Request, ctx: Ctx) -> web.Response:
    q = request.query
    before_id = q.get("before_id")
    if before_id and not before_id.isdigit():
        raise InvalidRequest("before_id must be a number", field="before_id")
    outcome = q.get("outcome") or None
    if outcome and outcome not in auditlog.OUTCOMES:
        raise InvalidRequest("unknown outcome", field="outcome")
    async with ctx.pool.acquire() as conn:
        rows = await auditlog.search(conn, actor=q.get("actor") or None, action=q.get("action") or None,
                                     target=q.get("target") or None, merchant_id=q.get("merchant_id") or None,
                                     outcome=outcome, before_id=int(before_id) if before_id else None, limit=100)
    filt = {k: q.get(k) for k in ("actor", "action", "target", "merchant_id", "outcome") if q.get(k)}
    return ctx.render("console/audit.html", rows=rows, filt=filt, outcomes=auditlog.OUTCOMES,
                      next=rows[-1]["id"] if len(rows) == 100 else None)


# ---------------------------------------------------------------------- users
async def user_list(request: web.Request, ctx: Ctx, *, shown: str | None = None,
                    shown_for: str | None = None) -> web.Response:
    async with ctx.pool.acquire() as conn:
        rows = await users.list_users(conn)
    return ctx.render("console/users.html", rows=rows, roles=users.ROLES, totp_uri=shown, totp_user=shown_for)


async def user_add(request: web.Request, ctx: Ctx) -> web.Response:
    username = ctx.field("username", required=True, max_len=64)
    role = ctx.field("role", required=True, max_len=16)
    try:
        async with ctx.pool.acquire() as conn:
            user, uri = await users.add_user(conn, request.app[AUTH].merchants.box, username, role,
                                             ctx.field("password", required=True, max_len=256),
                                             merchant_id=ctx.field("merchant_id", max_len=64) or None)
    except (ValueError, LookupError) as e:
        raise InvalidRequest(str(e)) from None
    await ctx.audit("user.create", target=username, merchant_id=user.merchant_id, after=user.public())
    return await user_list(request, ctx, shown=uri, shown_for=username)


async def user_change(request: web.Request, ctx: Ctx) -> web.Response:
    name, op = request.match_info["name"], request.match_info["op"]
    box = request.app[AUTH].merchants.box
    uri = None
    async with ctx.pool.acquire() as conn:
        before = await users.get_user(conn, name)
        if before is None:
            raise NotFound("no such user")
        try:
            if op in ("disable", "enable"):
                after = await users.set_status(conn, name, "disabled" if op == "disable" else "active")
            elif op == "reset-password":
                after = await users.reset_password(conn, name, ctx.field("password", required=True, max_len=256))
            else:
                after, uri = await users.reset_totp(conn, box, name)
        except ValueError as e:
            raise InvalidRequest(str(e)) from None
    await ctx.audit(f"user.{op}", target=name, merchant_id=before.merchant_id, before=before.public(),
                    after=after.public())
    return await user_list(request, ctx, shown=uri, shown_for=name if uri else None)


# ---------------------------------------------------------------- attention
async def attention_list(request: web.Request, ctx: Ctx) -> web.Response:
    q = request.query
    status = q.get("status", "OPEN") or None
    if status and status not in attention.STATUSES:
        raise InvalidRequest("unknown status", field="status")
    kind = q.get("kind") or None
    if kind and kind not in attention.KINDS:
        raise InvalidRequest("unknown kind", field="kind")
    before = q.get("before_id")
    if before and not before.isdigit():
        raise InvalidRequest("before_id must be a number", field="before_id")
    async with ctx.pool.acquire() as conn:
        items = await attention.list_items(conn, status=status, kind=kind, merchant_id=q.get("merchant_id") or None,
                                           limit=100, before_id=int(before) if before else None)
    return ctx.render("console/attention.html", items=items, statuses=attention.STATUSES, kinds=attention.KINDS,
                      sel_status=status or "", kind=kind or "", next=items[-1]["id"] if len(items) == 100 else None)


async def _item(ctx: Ctx, raw: str) -> dict[str, Any]:
    if not raw.isdigit():
        raise NotFound("no such attention item")
    async with ctx.pool.acquire() as conn:
        item = await attention.get_item(conn, int(raw))
    if item is None:
        raise NotFound("no such attention item")
    return item


async def attention_item(request: web.Request, ctx: Ctx) -> web.Response:
    item = await _item(ctx, request.match_info["item"])
    return ctx.render("console/attention_item.html", item=item,
                      actions=attention.ACTIONS.get(item["kind"], ("acknowledge",)))


async def attention_resolve(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """Engine.resolve_attention: the action's money effect and the resolution commit together."""
    item = await _item(ctx, request.match_info["item"])
    action = ctx.field("action", required=True, max_len=32)
    reason = ctx.field("reason", required=True, max_len=500)
    try:
        after = await request.app[ENGINE].resolve_attention(item["id"], action, actor=ctx.user.username, reason=reason)
    except PaycoreError as e:
        await ctx.audit("attention.resolve", target=str(item["id"]), outcome="failed", merchant_id=item["merchant_id"],
                        reason=f"{action}: {reason} ({e.code}: {e.message})", before=item)
        raise
    await ctx.audit("attention.resolve", target=str(item["id"]), merchant_id=item["merchant_id"],
                    reason=f"{action}: {reason}", before=item, after=after)
    return ctx.done(f"/attention/{item['id']}", "Item resolved.")
