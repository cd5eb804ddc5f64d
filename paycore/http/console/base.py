"""What every console and portal page shares: the two areas, the session
cookie, the rights check, CSRF, rendering (Jinja2, 中文 / English) and the
audit log.

Every handler is wrapped by :func:`page` with the right it needs. The
wrapper, on the server and before the handler runs: finds the session (no
session: to the login page), refuses a user of the other area, checks the
right (refused: 403 page and an ``access.denied`` audit row), and for a POST
checks the form's CSRF token against the session's and a same-host
``Origin``. Errors become HTML pages with the API's status.

Cookies are HttpOnly, SameSite=Strict, scoped to the area's path and Secure
when the public URL is https (or ``[console] secure_cookies``).
"""
from __future__ import annotations

import functools
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode, urlsplit

import aiohttp_jinja2
from aiohttp import web

from paycore.errors import InvalidRequest, NotFound, PaycoreError
from paycore.http.common import AUTH, CONFIG, POOL
from paycore.http.console import i18n
from paycore.merchants import auditlog, users
from paycore.merchants.auth import Merchant


@dataclass(frozen=True, slots=True)
class Area:
    name: str          # console | portal
    prefix: str        # /console | /portal
    cookie: str
    operator: bool


CONSOLE = Area("console", "/console", "pc_console", True)
PORTAL = Area("portal", "/portal", "pc_portal", False)
LOGIN_COOKIE = "pc_login"    # double-submit CSRF token of the login form (there is no session yet)
LANG_COOKIE = "pc_lang"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Forbidden(PaycoreError):
    status, code = 403, "FORBIDDEN"


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode())


def secure_cookies(request: web.Request) -> bool:
    cfg = request.app[CONFIG]
    if cfg.console.secure_cookies is not None:
        return cfg.console.secure_cookies
    return cfg.server.public_base_url.startswith("https:")


def set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str, path: str,
               max_age: int | None = None) -> None:
    resp.set_cookie(name, value, path=path, httponly=True, samesite="Strict", secure=secure_cookies(request),
                    max_age=max_age)


def lang_of(request: web.Request) -> str:
    q = request.query.get("lang")
    if q in i18n.LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    if c in i18n.LANGS:
        return c
    accept = request.headers.get("Accept-Language", "").lower()
    return "zh" if accept.startswith("zh") else "en"


def client_ip(request: web.Request) -> str | None:
    # the peer's address; behind a proxy this is the proxy's (X-Forwarded-For is the client's to forge)
    return request.remote


def actor_of(request: web.Request, name: str, role: str | None) -> auditlog.Actor:
    return auditlog.Actor(name, role, client_ip(request))


def render(request: web.Request, template: str, ctx: dict[str, Any], *, status: int = 200,
           lang: str | None = None) -> web.Response:
    lang = lang or lang_of(request)
    ctx = {"msg": request.query.get("msg"), "user": None, "csrf": "", "ctx": None, **ctx,
           "_": i18n.translator(lang), "lang": lang, "money": i18n.money, "when": i18n.when,
           "path": request.path, "query": request.query}
    resp = aiohttp_jinja2.render_template(template, request, ctx, status=status)
    resp.headers.update(SECURITY_HEADERS)
    if request.query.get("lang") in i18n.LANGS:
        resp.set_cookie(LANG_COOKIE, lang, path="/", samesite="Strict", max_age=365 * 86400,
                        secure=secure_cookies(request))
    return resp


@dataclass
class Ctx:
    """One request of a logged-in user."""
    request: web.Request
    area: Area
    session: users.Session
    form: dict[str, str]

    @property
    def user(self) -> users.User:
        return self.session.user

    @property
    def pool(self) -> Any:
        return self.request.app[POOL]

    @property
    def scope(self) -> str | None:
        """The merchant whose data alone this user sees (None: an operator, who sees all)."""
        return None if self.user.operator else self.user.merchant_id

    @property
    def actor(self) -> auditlog.Actor:
        return actor_of(self.request, self.user.username, self.user.role)

    def url(self, path: str = "/", **query: Any) -> str:
        q = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.area.prefix}{path}" + ("?" + urlencode(q) if q else "")

    def render(self, template: str, status: int = 200, **kw: Any) -> web.Response:
        return render(self.request, template, dict(kw, ctx=self, user=self.user, area=self.area,
                                                   csrf=self.session.csrf), status=status)

    def done(self, path: str, msg: str) -> web.HTTPSeeOther:
        """After a write: back to a page (POST, redirect, GET) with a message key."""
        sep = "&" if "?" in path else "?"
        return web.HTTPSeeOther(f"{self.area.prefix}{path}{sep}msg={quote(msg)}")

    async def audit(self, action: str, **kw: Any) -> None:
        async with self.pool.acquire() as conn:
            await auditlog.record(conn, self.actor, action, **kw)

    def field(self, name: str, *, required: bool = False, max_len: int = 500) -> str:
        v = (self.form.get(name) or "").strip()
        if required and not v:
            raise InvalidRequest(f"{name} is required", field=name)
        if len(v) > max_len:
            raise InvalidRequest(f"{name} is at most {max_len} characters", field=name)
        return v

    async def merchant(self, merchant_id: str) -> Merchant:
        m = await self.request.app[AUTH].merchants.get(merchant_id)
        if m is None:
            raise NotFound("no such merchant")
        return m


Handler = Callable[[web.Request, Ctx], Awaitable[web.StreamResponse]]


def page(area: Area, right: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a page of ``area`` that needs ``right``: session, area, right and CSRF are checked first."""
    def wrap(fn: Handler):
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            cfg = request.app[CONFIG].console
            async with request.app[POOL].acquire() as conn:
                session = await users.session_for(conn, request.cookies.get(area.cookie), idle=cfg.idle_timeout,
                                                  absolute=cfg.absolute_timeout)
            if session is None or session.user.operator != area.operator:
                if request.method != "GET":
                    return error_page(request, area, 401, "Your session has ended; log in again.")
                nxt = request.path_qs if request.path_qs.startswith(area.prefix + "/") else area.prefix + "/"
                raise web.HTTPSeeOther(f"{area.prefix}/login?" + urlencode({"next": nxt}))
            form: dict[str, str] = {}
            if request.method == "POST":
                data = await request.post()
                form = {k: v for k, v in data.items() if isinstance(v, str)}
                origin = request.headers.get("Origin")
                if (not same(form.get("csrf", ""), session.csrf)
                        or (origin and origin != "null" and urlsplit(origin).netloc != request.host)):
                    return error_page(request, area, 403, "The form has expired; reload the page and try again.")
            ctx = Ctx(request, area, session, form)
            if not session.user.can(right):
                await ctx.audit("access.denied", target=request.path[:200], outcome="denied",
                                merchant_id=ctx.scope, reason=f"{session.user.role} lacks {right}")
                return error_page(request, area, 403, "You do not have the right to do this.", ctx=ctx)
            try:
                return await fn(request, ctx)
            except PaycoreError as e:
                return error_page(request, area, e.status, e.message, ctx=ctx)
        return handler
    return wrap


def error_page(request: web.Request, area: Area, status: int, message: str, *, ctx: Ctx | None = None
               ) -> web.Response:
    return render(request, "console/error.html", {"status": status, "message": message, "area": area,
                                                    "user": ctx.user if ctx else None, "ctx": ctx,
                                                    "csrf": ctx.session.csrf if ctx else ""}, status=status)


def login_token() -> str:
    return secrets.token_urlsafe(24)
