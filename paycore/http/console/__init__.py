"""The operations console (``/console/``) and the merchant portal
(``/portal/``): server-rendered pages (Jinja2 templates under
paycore/http/templates/console, a stylesheet and a few lines of JavaScript
under paycore/http/static/console; no build step), each starting at its
login page. Users, sessions and rights: paycore.merchants.users; the audit
log: paycore.merchants.auditlog; the page wrapper that enforces them:
:mod:`paycore.http.console.base`.
"""
from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from paycore.http.common import AUTH, CONFIG, POOL
from paycore.http.console import operator, portal, views
from paycore.http.console.base import (CONSOLE, LOGIN_COOKIE, PORTAL, Area, actor_of, login_token, page, render,
                                       same, set_cookie)
from paycore.merchants import auditlog, users

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static" / "console"

MESSAGES = {
    "bad_credentials": "Wrong username, password or code.", "bad_code": "Wrong username, password or code.",
    "wrong_area": "Wrong username, password or code.", "locked": "Too many failed attempts: this account is locked for a while.",
    "disabled": "This account is disabled.", "expired": "The form has expired; reload the page and try again.",
}


def _next(area: Area, raw: str | None) -> str:
    """Where to go after login: a path of this area only (never another host)."""
    if raw and raw.startswith(area.prefix + "/") and "//" not in raw and "\\" not in raw:
        return raw
    return area.prefix + "/"


def login_pages(area: Area):
    def form(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
        token = login_token()
        resp = render(request, "console/login.html", {"area": area, "token": token, "error": MESSAGES.get(error or ""),
                                                      "next": _next(area, request.query.get("next")), "user": None},
                      status=status)
        set_cookie(request, resp, LOGIN_COOKIE, token, area.prefix + "/login")
        return resp

    async def get(request: web.Request) -> web.Response:
        return form(request)

    async def post(request: web.Request) -> web.StreamResponse:
        data = await request.post()
        token = data.get("token")
        if not isinstance(token, str) or not same(token, request.cookies.get(LOGIN_COOKIE, "\x00")):
            return form(request, "expired", 403)
        username = str(data.get("username") or "")[:64]
        cfg = request.app[CONFIG].console
        async with request.app[POOL].acquire() as conn:
            res = await users.login(conn, request.app[AUTH].merchants.box, username, str(data.get("password") or ""),
                                    str(data.get("code") or ""), operator_area=area.operator,
                                    max_failures=cfg.max_failures, lockout_seconds=cfg.lockout_seconds)
            who = res.known
            actor = actor_of(request, who.username if who else (username if users.USERNAME_RE.match(username)
                                                                     else "(invalid name)"),
                                   who.role if who else None)
            await auditlog.record(conn, actor, f"{area.name}.login", target=username if who else None,
                                  outcome="ok" if res.user else "failed", reason=res.error,
                                  merchant_id=who.merchant_id if who else None)
            if res.user is None:
                return form(request, res.error, 401)
            token = await users.open_session(conn, res.user, request.remote, request.headers.get("User-Agent"))
        resp = web.HTTPSeeOther(_next(area, str(data.get("next") or "")))
        set_cookie(request, resp, area.cookie, token, area.prefix + "/")
        resp.del_cookie(LOGIN_COOKIE, path=area.prefix + "/login")
        return resp

    @page(area, "session")
    async def logout(request: web.Request, ctx) -> web.StreamResponse:
        async with ctx.pool.acquire() as conn:
            await users.close_session(conn, ctx.session.id)
        await ctx.audit(f"{area.name}.logout", target=ctx.user.username, merchant_id=ctx.scope)
        resp = web.HTTPSeeOther(area.prefix + "/login")
        resp.del_cookie(area.cookie, path=area.prefix + "/")
        return resp

    return get, post, logout


def _shared(r: web.UrlDispatcher, area: Area) -> None:
    p = area.prefix
    r.add_get(p + "/payments", page(area, "payments.read")(views.payments))
    r.add_get(p + "/payments.csv", page(area, "payments.export")(views.payments_csv))
    r.add_get(p + "/payments/{id}", page(area, "payments.read")(views.payment))
    r.add_post(p + "/payments/{id}/refund", page(area, "payments.refund")(views.refund))
    r.add_get(p + "/payouts", page(area, "payments.read")(views.payouts))
    r.add_get(p + "/payouts/{id}", page(area, "payments.read")(views.payout))
    r.add_get(p + "/codes", page(area, "codes.read")(views.code_list))
    r.add_get(p + "/codes/{code}.{kind:png|pdf}", page(area, "codes.read")(views.code_qr))
    r.add_get(p + "/webhooks", page(area, "webhooks.read")(views.webhook_list))


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                         trim_blocks=True, lstrip_blocks=True)
    env = aiohttp_jinja2.get_env(app)
    env.globals["attention_enabled"] = True
    r = app.router
    r.add_static("/console/static/", STATIC, append_version=True)
    for area in (CONSOLE, PORTAL):
        get, post, logout = login_pages(area)
        r.add_get(area.prefix + "/login", get)
        r.add_post(area.prefix + "/login", post)
        r.add_post(area.prefix + "/logout", logout)
        r.add_get(area.prefix, _redirect(area.prefix + "/"))
        _shared(r, area)

    c, C = CONSOLE.prefix, CONSOLE
    r.add_get(c + "/", page(C, "overview")(operator.overview))
    r.add_post(c + "/payments/{id}/cancel", page(C, "payments.cancel")(views.cancel))
    r.add_get(c + "/attention", page(C, "attention.read")(operator.attention_list))
    r.add_get(c + "/attention/{item}", page(C, "attention.read")(operator.attention_item))
    r.add_post(c + "/attention/{item}/resolve", page(C, "attention.resolve")(operator.attention_resolve))
    r.add_get(c + "/reconciliation", page(C, "reconciliation.read")(operator.reconciliation))
    r.add_post(c + "/reconciliation", page(C, "reconciliation.run")(operator.reconciliation_start))
    r.add_get(c + "/reconciliation/{run}", page(C, "reconciliation.read")(operator.reconciliation_run))
    r.add_get(c + "/merchants", page(C, "merchants.read")(operator.merchant_list))
    r.add_post(c + "/merchants", page(C, "merchants.write")(operator.merchant_create))
    r.add_get(c + "/merchants/{mid}", page(C, "merchants.read")(operator.merchant_page))
    r.add_post(c + "/merchants/{mid}", page(C, "merchants.write")(operator.merchant_update))
    r.add_post(c + "/merchants/{mid}/{op:disable|enable}", page(C, "merchants.write")(operator.merchant_status))
    r.add_post(c + "/merchants/{mid}/rotate-secret", page(C, "merchants.write")(operator.merchant_rotate))
    r.add_post(c + "/codes", page(C, "codes.write")(views.code_add))
    r.add_post(c + "/codes/{code}/{op:disable|enable}", page(C, "codes.write")(views.code_status))
    r.add_post(c + "/webhooks/{wid}/replay", page(C, "webhooks.replay")(views.webhook_replay))
    r.add_get(c + "/channels", page(C, "channels.read")(operator.channels))
    r.add_get(c + "/audit", page(C, "audit.read")(operator.audit))
    r.add_get(c + "/users", page(C, "users.read")(operator.user_list))
    r.add_post(c + "/users", page(C, "users.write")(operator.user_add))
    r.add_post(c + "/users/{name}/{op:disable|enable|reset-password|reset-totp}",
               page(C, "users.write")(operator.user_change))

    p, P = PORTAL.prefix, PORTAL
    r.add_get(p + "/", _redirect(p + "/payments"))
    r.add_get(p + "/statements", page(P, "statements.read")(portal.statements))
    r.add_get(p + "/statements/{day}.csv", page(P, "statements.read")(portal.statement_csv))
    r.add_get(p + "/credentials", page(P, "credentials.rotate")(portal.credentials))
    r.add_post(p + "/credentials/rotate", page(P, "credentials.rotate")(portal.credentials_rotate))
    r.add_post(p + "/webhooks/endpoint", page(P, "endpoint.write")(portal.endpoint_save))


def _redirect(to: str):
    async def handler(request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(to)
    return handler

