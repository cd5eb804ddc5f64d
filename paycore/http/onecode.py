"""One code for every app (一码通付): the merchant's static QR and its cashier page.

A merchant prints one QR that opens ``GET /c/{code}``. The page asks for the
amount and pays through whichever app scanned it, picked by User-Agent
(channels.md's table). Routes (server-rendered; the one foreign asset is the app's own
JS SDK, for the apps whose bridge is not built into their web view):

* ``GET  /c/{code}`` – the keypad page; an unsupported browser gets the list of
  apps that work, a disabled code a friendly page, an unknown one a 404 page.
* ``POST /c/{code}/pay`` – JSON ``{"amount": "12.34", "form": …}`` with header
  ``X-CSRF-Token``: creates a normal payment through the Engine and answers
  ``{"payment_id", "status", "result", "form", "bridge", "pay_params"}``: the page
  hands ``pay_params`` to the app's ``bridge``, then goes to ``result``.
* ``GET  /c/{code}/result/{payment_id}?t=…`` – the result page (polls the next).
* ``GET  /c/{code}/status/{payment_id}?t=…&wait=N`` – ``{"status", "final", …}``.
* ``GET  /c/{code}/auth/{channel}?code=…&state=…`` – where the app's OAuth comes
  back: the code is exchanged server-side for the payer id, then ``/c/{code}``.
* ``GET|POST /c/{code}/back/{form}/{mac}`` – where JD's H5 cashier sends the
  customer back (the uniorder ``callbackUrl``): on to that form's result page.

Safety. The merchant comes from the code's row on the server, never from the
request. The amount is a yuan string parsed without floats into int fen, > 0
and ≤ the merchant's limit (and equal to a fixed-amount code's). CSRF: a
random session cookie (``pc_sid``) plus a token ``HMAC(key, sid)`` the page
sends in a header, and a same-host ``Origin`` when the browser sends one.
Replay: every render carries a signed form token (code, session, form id,
time); the payment's ``merchant_order_no`` is derived from the form id, so a
resubmitted form returns the same payment and the same form with another
amount is a conflict. Rate limits are token buckets per worker process: per
client address (pages; payment attempts) and per code (payment attempts). The
client address is the TCP peer unless the peer is one of
``onecode.trusted_proxies``; then ``X-Forwarded-For`` is read from the right,
past the trusted hops. The key is HKDF-derived from the master key, so every
worker agrees.

The payer. jsapi needs the payer's id at the provider; where the provider's
adapter says so (``payer_auth``: WeChat ``snsapi_base``, Alipay ``auth_base``,
Douyin's silent ``login_id``) the first visit is sent to the app's OAuth with a
signed ``state`` (code, channel, session, time) and comes back to
``/c/{code}/auth/{channel}``, where the adapter exchanges the code; the id is
then kept in a signed cookie bound to the session (``pc_payer_<channel>``).
QQ Wallet's order names no payer (the QQ app pays for its logged-in user), so
its jsapi payments carry paycore's session pseudonym ``HMAC(key, channel | sid)``,
as paycore's API requires some payer for jsapi. UnionPay (``tn``) and JD
(h5) need none.

The app's step is the app's own: the pay answer carries ``bridge`` and
``pay_params`` and the page (onecode_pay.js) calls WeixinJSBridge
``getBrandWCPayRequest``, AlipayJSBridge ``tradePay``, 云闪付's ``upsdk.pay``,
QQ's ``mqq.tenpay.pay``, Douyin's bridge, or goes to JD's H5 cashier. 云闪付's
upsdk pays only on a page it has accepted ``upsdk.config`` from: the page carries
that configuration, signed by the UnionPay adapter over the open platform's
frontToken and the page's own address (``sdk`` in the page's config). Nothing
here links to a simulator: against the simulators the tests play the apps. Only
in development (``onecode.desktop_pay_url``, which devstack sets to the
simulators' confirm page) does a desktop browser get a way to pay: it picks an
app (``?as=<channel>``) and is sent to that page; production leaves it empty.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from channels.base import ChannelError, Method
from channels.oauth import PAYER_ID_RE
from paycore.config import OnecodeConfig
from paycore.core import validation
from paycore.core.journal import DB_DOWN
from paycore.http.common import AUTH, CONFIG, ENGINE, POOL, json_response, read_body
from paycore.merchants.codes import Code, load_code
from paycore.errors import InvalidRequest, NotFound, PaycoreError, RateLimited, Unavailable
from channels.secrets import Secret


log = logging.getLogger("paycore.onecode")
STATIC = Path(__file__).parent / "static"
SID_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
# yuan with at most two decimals, no sign, no exponent, no leading zeros
YUAN_RE = re.compile(r"^(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?$")
SID_COOKIE = "pc_sid"
FORM_TTL = 30 * 60          # a page left open longer must be reloaded
OAUTH_TTL = 10 * 60         # an OAuth round trip must come back within this
PAYER_COOKIE = "pc_payer_"  # + channel
MAX_WAIT = 25               # seconds a status long-poll may hold


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a client's token with ours. Bytes: compare_digest raises
    TypeError on a str with non-ASCII characters, and clients send whatever they like."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


class Forbidden(PaycoreError):
    status, code = 403, "FORBIDDEN"


class CodeDisabled(PaycoreError):
    status, code = 410, "CODE_DISABLED"


# ------------------------------------------------------------------ the apps
@dataclass(frozen=True, slots=True)
class App:
    channel: str
    zh: str
    en: str
    colour: str
    matches: Callable[[str], bool]
    bridge: str              # how onecode_pay.js hands the order to the app (see BRIDGES there)
    sdk: str = ""            # the app's JS SDK, where the bridge is not built into the web view


#: channels.md "One code for every app": first match wins. WeChat, Alipay and Douyin
#: build their bridges into the web view; QQ's mqq and 云闪付's upsdk come from their SDK scripts.
APPS: tuple[App, ...] = (
    App("wechatpay", "微信支付", "WeChat Pay", "#07c160",
        lambda ua: "MicroMessenger/" in ua and "WindowsWechat" not in ua, "wechat"),
    App("alipay", "支付宝", "Alipay", "#1677ff", lambda ua: "AlipayClient/" in ua, "alipay"),
    App("unionpay", "云闪付", "UnionPay QuickPass", "#e60012", lambda ua: "UnionPay/" in ua, "unionpay",
        "https://open.95516.com/s/open/js/upsdk.js"),
    App("qqwallet", "QQ钱包", "QQ Wallet", "#12b7f5", lambda ua: "QQ/" in ua, "qq",
        "https://open.mobile.qq.com/sdk/qqapi.js?_bid=152"),
    App("jdpay", "京东支付", "JD Pay", "#e1251b", lambda ua: "jdapp" in ua or "jdjr" in ua, "redirect"),
    App("douyinpay", "抖音支付", "Douyin Pay", "#161823", lambda ua: "aweme" in ua, "douyin"),
)
APP_BY_CHANNEL = {a.channel: a for a in APPS}

#: in-app payment methods, best first: jsapi inside the app's web view, else
#: the H5 cashier, else the app SDK's order (UnionPay's ``tn``, which 云闪付's
#: web view pays through its JS SDK)
METHOD_PREFERENCE = (Method.JSAPI, Method.H5, Method.APP)


def app_for(user_agent: str) -> App | None:
    for a in APPS:
        if a.matches(user_agent):
            return a
    return None


def method_for(methods: frozenset[Method]) -> Method | None:
    return next((m for m in METHOD_PREFERENCE if m in methods), None)


# ------------------------------------------------------------------- amounts
def parse_yuan(raw: Any) -> int:
    """``"12.34"`` → 1234 fen. Only a string of that exact shape; no floats."""
    if not isinstance(raw, str) or len(raw) > 16:
        raise InvalidRequest("amount must be a yuan string such as \"12.34\"", field="amount")
    m = YUAN_RE.match(raw)
    if m is None:
        raise InvalidRequest("amount must be a yuan string such as \"12.34\"", field="amount")
    fen = int(m.group(1)) * 100 + int((m.group(2) or "").ljust(2, "0"))
    if fen <= 0:
        raise InvalidRequest("amount must be more than zero", field="amount")
    return fen


def yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}"


# -------------------------------------------------------------------- tokens
def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


class Tokens:
    """Every MAC the page uses, under one key derived from the master key."""

    def __init__(self, master_key: Secret) -> None:
        # without a master key the app still starts (SecretBox refuses later); pages answer 503
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"paycore-onecode",
                         info=b"v1").derive(master_key.get_bytes()) if master_key else None

    def mac(self, *parts: str) -> bytes:
        if self._key is None:
            raise Unavailable("one-code pages need a master key (PAYCORE_MASTER_KEY)")
        return hmac.new(self._key, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def csrf(self, sid: str) -> str:
        return _b64(self.mac("csrf", sid))

    def form(self, code: str, sid: str, now: float | None = None) -> str:
        form_id = base64.b32encode(secrets.token_bytes(15)).decode().lower()
        issued = str(int(time.time() if now is None else now))
        return f"{form_id}.{issued}.{_b64(self.mac('form', code, sid, form_id, issued)[:18])}"

    def check_form(self, token: Any, code: str, sid: str, now: float | None = None) -> str:
        """The form id of a valid token for this code and session, else Forbidden."""
        parts = token.split(".") if isinstance(token, str) and len(token) < 128 else []
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
            raise Forbidden("invalid form token; reload the page")
        form_id, issued, mac = parts
        if not _same(mac, _b64(self.mac("form", code, sid, form_id, issued)[:18])):
            raise Forbidden("invalid form token; reload the page")
        age = (time.time() if now is None else now) - int(issued)
        if not -60 <= age <= FORM_TTL:
            raise Forbidden("this page has expired; reload it")
        return form_id

    def result(self, code: str, payment_id: str) -> str:
        return _b64(self.mac("result", code, payment_id)[:18])

    def back(self, code: str, form_id: str) -> str:
        """The MAC in the address JD's cashier returns to (``/c/{code}/back/{form}/{mac}``)."""
        return _b64(self.mac("back", code, form_id)[:18])

    def oauth_state(self, code: str, channel: str, sid: str, now: float | None = None) -> str:
        """OAuth's ``state``: letters and digits only (WeChat allows no more), binding the
        round trip to this code, channel and browser session."""
        issued = str(int(time.time() if now is None else now))
        return f"{issued}x{self.mac('oauth', code, channel, sid, issued)[:16].hex()}"

    def check_oauth_state(self, state: str, code: str, channel: str, sid: str, now: float | None = None) -> None:
        issued, _, mac = state.partition("x") if len(state) < 64 else ("", "", "")
        if not (issued.isascii() and issued.isdigit() and
                _same(mac, self.mac("oauth", code, channel, sid, issued)[:16].hex())):
            raise Forbidden("invalid OAuth state")
        if not -60 <= (time.time() if now is None else now) - int(issued) <= OAUTH_TTL:
            raise Forbidden("the app took too long; reload the page")

    def payer_cookie(self, channel: str, payer: dict[str, str], sid: str, now: float | None = None) -> str:
        """``<field>.<id>.<issued>.<mac>``: the payer id the app's OAuth gave, for this session."""
        (field, pid), = payer.items()
        issued = str(int(time.time() if now is None else now))
        return f"{field}.{pid}.{issued}.{_b64(self.mac('payer-id', channel, field, pid, sid, issued)[:18])}"

    def payer_from_cookie(self, value: str, channel: str, sid: str, max_age: float,
                          now: float | None = None) -> dict[str, str] | None:
        parts = value.split(".") if len(value) < 256 else []
        if len(parts) != 4 or parts[0] not in ("openid", "user_id") or not PAYER_ID_RE.match(parts[1]):
            return None
        field, pid, issued, mac = parts
        if not (issued.isascii() and issued.isdigit() and
                _same(mac, _b64(self.mac("payer-id", channel, field, pid, sid, issued)[:18]))):
            return None
        if (time.time() if now is None else now) - int(issued) > max_age:
            return None
        return {field: pid}

    def payer(self, channel: str, sid: str) -> dict[str, str]:
        """A stable pseudonymous payer, shaped like the channel's ids, for a jsapi order
        whose provider names no payer (QQ Wallet) while paycore's API wants one."""
        d = self.mac("payer", channel, sid)
        match channel:
            case "alipay":
                return {"user_id": "2088" + str(int.from_bytes(d[:8], "big") % 10**12).zfill(12)}
            case "qqwallet":
                return {"openid": d[:16].hex().upper()}
            case _:
                return {"openid": "o" + _b64(d)[:27]}


class IpLimiter:
    """Token bucket per client address (per worker process)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, list[float]] = {}

    def check(self, key: str) -> None:
        now = time.monotonic()
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            b = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            raise RateLimited("too many requests; please wait a moment",
                              retry_after=max(1, int((1.0 - tokens) / self.rate + 0.999)))
        b[0] = tokens - 1.0


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``onecode.trusted_proxies`` parsed: addresses or CIDRs (ValueError on anything else)."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def client_address(peer: str | None, forwarded: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The customer's address. ``X-Forwarded-For`` is believed only when the TCP peer is a
    trusted proxy; it is read from the right (each proxy appends the address it saw), past
    the trusted hops: the first untrusted address is the client. A garbled entry stops the
    walk at the last trusted hop, so a client can never choose its own bucket."""
    if not peer:
        return "unknown"
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(addr in n for n in trusted):
        return peer
    hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            hop_addr = ipaddress.ip_address(hop)
        except ValueError:
            break
        if not any(hop_addr in n for n in trusted):
            return str(hop_addr)
        addr = hop_addr
    return str(addr)


@dataclass
class OneCode:
    tokens: Tokens
    settings: OnecodeConfig
    trusted: tuple[Network, ...]
    pages: IpLimiter     # every /c/ request, per client
    pays: IpLimiter      # payment attempts, per client
    code_pays: IpLimiter  # payment attempts, per code (all clients together)


ONECODE: web.AppKey[OneCode] = web.AppKey("onecode", OneCode)


# ---------------------------------------------------------------------- HTML
_CSS = (STATIC / "onecode.css").read_text()
_PAY_JS = (STATIC / "onecode_pay.js").read_text()
_RESULT_JS = (STATIC / "onecode_result.js").read_text()
e = html.escape


def _json_island(obj: Any) -> str:
    # inside <script type="application/json">: nothing may close the element
    return json.dumps(obj, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(title: str, body: str, *, script: str = "", cfg: Any = None, status: int = 200,
          cookies: dict[str, tuple[str, int]] | None = None, secure: bool = False, sdk: str = "") -> web.Response:
    """One server-rendered page. ``cookies``: name → (value, max-age); ``sdk``: the app's
    JS SDK, loaded before the page's script and the only foreign source CSP allows."""
    nonce = secrets.token_urlsafe(12)
    island = f'<script type="application/json" id="cfg">{_json_island(cfg)}</script>' if cfg is not None else ""
    js = f'<script nonce="{nonce}" src="{e(sdk)}"></script>' if sdk else ""
    js += f'<script nonce="{nonce}">{script}</script>' if script else ""
    sdk_origin = f" {urlsplit(sdk).scheme}://{urlsplit(sdk).netloc}" if sdk else ""
    doc = (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width,initial-scale=1,maximum-scale=1,user-scalable=no">'
           f'<meta name="format-detection" content="telephone=no"><title>{e(title)}</title>'
           f'<style>{_CSS}</style></head><body><main>{body}</main>{island}{js}</body></html>')
    resp = web.Response(text=doc, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'{sdk_origin}; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    for name, (value, max_age) in (cookies or {}).items():
        resp.set_cookie(name, value, max_age=max_age, path="/c/", httponly=True, samesite="Lax", secure=secure)
    return resp


def _head(name: str, sub_zh: str = "", sub_en: str = "") -> str:
    initial = e(name.strip()[:1] or "¥")
    sub = f'<div class="en">{e(sub_zh)} {e(sub_en)}</div>' if sub_zh else ""
    return f'<div class="head"><div class="logo">{initial}</div><h1 id="merchant-name">{e(name)}</h1>{sub}</div>'


def _state(kind: str, icon: str, zh: str, en: str, extra: str = "", status: str = "") -> str:
    return (f'<div class="card state {kind}" id="state" data-status="{e(status)}"><div class="icon">{icon}</div>'
            f'<h2 id="title">{e(zh)}</h2><div class="en">{e(en)}</div>{extra}</div>')


def _message_page(title: str, kind: str, icon: str, zh: str, en: str, note: str = "", *,
                  status: int = 200, head: str = "") -> web.Response:
    extra = f'<p class="note">{note}</p>' if note else ""
    return _page(title, head + _state(kind, icon, zh, en, extra), status=status)


def _unsupported_page(code: Code, enabled: list[App], desktop: bool = False) -> web.Response:
    items = "".join(f'<li data-channel="{a.channel}"><span class="dot" style="background:{a.colour}">'
                    f'{e(a.zh[:1])}</span><div><div>{e(a.zh)}</div><div class="en">{e(a.en)}</div></div></li>'
                    for a in enabled)
    body = (_head(code.merchant_name) +
            _state("off", "?", "请使用以下应用扫码支付", "Please scan this code with one of these apps",
                   status="unsupported") +
            f'<div class="card"><ul class="apps" id="apps">{items}</ul></div>')
    if desktop:   # development only: pay as one of the apps through the simulators
        links = "".join(f'<a class="btn secondary" data-channel="{a.channel}" href="/c/{e(code.code)}?'
                        f'{e(urlencode({"as": a.channel}))}">{e(a.zh)} · {e(a.en)}</a>' for a in enabled)
        body += ('<div class="card" id="desktop"><div class="label">开发环境 · Development: '
                 f'pay as an app in the simulator</div>{links}</div>')
    else:
        body += '<p class="foot">当前浏览器无法完成支付 · This browser cannot pay this code</p>'
    return _page("请用支付应用扫码 · Scan with a payment app", body)


def _pad_page(code: Code, app: App, limit: int, cfg: dict[str, Any], cookies: dict[str, tuple[str, int]],
              secure: bool, desktop: bool = False) -> web.Response:
    fixed = code.amount is not None
    limits = ("固定金额 Fixed amount" if fixed else
              f"单笔限额 ¥0.01 – ¥{yuan(limit)} · Limit per payment")
    amount_text = e(yuan(code.amount)) if fixed else "0.00"
    sub_en = f"Paying with {app.en}" + (" (development: in the simulator)" if desktop else "")
    body = (_head(code.merchant_name, f"使用{app.zh}付款", sub_en) +
            '<div class="card"><div class="label">付款金额 <span class="en">Amount (CNY)</span></div>'
            f'<div class="amount"><span class="cur">¥</span><span class="val{"" if fixed else " empty"}" '
            f'id="amount-value">{amount_text}</span>{"" if fixed else "<span class=caret></span>"}</div>'
            f'<input type="hidden" name="amount" id="amount" value="{e(cfg["fixed"] or "")}">'
            f'<div class="limits" id="limits">{limits}</div><div class="error" id="error" role="alert"></div></div>')
    if fixed:
        body += '<button class="btn" id="pay" type="button">确认付款 Pay</button>'
    else:
        keys = "".join(f'<button type="button" data-key="{k}">{k}</button>' for k in "123456789")
        body += (f'<div class="pad" id="pad">{keys}<button type="button" data-key="0" class="zero">0</button>'
                 '<button type="button" data-key=".">.</button>'
                 '<button type="button" data-key="del" class="del" aria-label="delete">⌫</button>'
                 '<button type="button" class="pay" id="pay" disabled>付款<br><small>Pay</small></button></div>')
    return _page(f"{code.merchant_name} · 付款 Pay", body, script=_PAY_JS, cfg=cfg, cookies=cookies, secure=secure,
                 sdk="" if desktop else app.sdk)


# ------------------------------------------------------------------ handlers
def _app_objects(request: web.Request):
    return request.app[CONFIG], request.app[ENGINE], request.app[AUTH], request.app[POOL]


async def _db(coro):
    try:
        return await coro
    except DB_DOWN as err:
        raise Unavailable("database unavailable") from err


def _client(request: web.Request) -> str:
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                          request.app[ONECODE].trusted)


def _sid(request: web.Request) -> str | None:
    sid = request.cookies.get(SID_COOKIE, "")
    return sid if SID_RE.match(sid) else None


def _usable(engine: Any, app: App) -> bool:
    """The app's channel is configured, has an in-app method and, where its jsapi needs
    the payer from the app's OAuth, that OAuth is configured too, as is what the app's
    JS SDK needs to be configured on the page (云闪付's open platform appId and secret)."""
    adapter = engine.adapters.get(app.channel)
    method = method_for(adapter.methods) if adapter is not None else None
    return method is not None and adapter.web_sdk_ready() and not (
        method is Method.JSAPI and adapter.payer_auth and not adapter.payer_auth_ready())


def _enabled_apps(engine: Any) -> list[App]:
    return [a for a in APPS if _usable(engine, a)]


def _needs_oauth(engine: Any, app: App) -> bool:
    adapter = engine.adapters[app.channel]
    return method_for(adapter.methods) is Method.JSAPI and adapter.payer_auth


def _limit(cfg: Any, code: Code) -> int:
    return code.max_amount or cfg.payments.default_max_amount


def _public_origin(request: web.Request, cfg: Any) -> str:
    """Where customers reach paycore: the configured public URL (behind a proxy the
    request's own host is an internal one), else the request's origin."""
    base = cfg.server.public_base_url.rstrip("/")
    return base or f"{request.scheme}://{request.host}"


async def _code_or_page(request: web.Request, pool: Any) -> Code | web.Response:
    try:
        code = await _db(load_code(pool, request.match_info["code"]))
    except Unavailable:
        return _message_page("暂时无法服务 · Unavailable", "off", "!", "系统繁忙，请稍后再试",
                             "The service is busy; please try again soon", status=503)
    if code is None:
        return _message_page("收款码不存在 · Unknown code", "off", "?", "找不到这个收款码",
                             "This payment code does not exist", "请向商家确认 · Please ask the merchant",
                             status=404)
    if not code.usable:
        return _message_page("收款码已停用 · Code disabled", "off", "–", "此收款码已停用",
                             "This payment code has been disabled",
                             "请向商家确认其他付款方式 · Please ask the merchant for another way to pay",
                             head=_head(code.merchant_name))
    return code


def _payer_of(request: web.Request, channel: str, sid: str) -> dict[str, str] | None:
    oc = request.app[ONECODE]
    value = request.cookies.get(PAYER_COOKIE + channel, "")
    return oc.tokens.payer_from_cookie(value, channel, sid, oc.settings.payer_days * 86400) if value else None


async def _opened(request: web.Request) -> tuple[Any, Any, OneCode, Code | web.Response]:
    """A page request's start: its rate limit, then the code (or the page saying why not)."""
    cfg, engine, _, pool = _app_objects(request)
    oc = request.app[ONECODE]
    oc.pages.check(_client(request))
    return cfg, engine, oc, await _code_or_page(request, pool)


def _redirect(request: web.Request, location: str, cookies: dict[str, tuple[str, int]]) -> web.Response:
    resp = web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    for name, (value, max_age) in cookies.items():
        resp.set_cookie(name, value, max_age=max_age, path="/c/", httponly=True, samesite="Lax",
                        secure=request.secure)
    return resp


async def code_page(request: web.Request) -> web.StreamResponse:
    cfg, engine, oc, code = await _opened(request)
    if isinstance(code, web.Response):
        return code
    enabled = _enabled_apps(engine)
    app = app_for(request.headers.get("User-Agent", ""))
    desktop = _desktop_app(request, oc, app, enabled)
    if desktop is not None:
        app = desktop
    elif app is None or app not in enabled:
        return _unsupported_page(code, enabled, desktop=bool(oc.settings.desktop_pay_url))
    sid = _sid(request)
    cookies: dict[str, tuple[str, int]] = {}
    if sid is None:
        sid = secrets.token_urlsafe(24)
        cookies[SID_COOKIE] = (sid, 365 * 24 * 3600)
    if desktop is None and _needs_oauth(engine, app) and _payer_of(request, app.channel, sid) is None:
        # the app's silent authorisation first: it names the payer, then comes back here
        redirect_uri = f"{_public_origin(request, cfg)}/c/{code.code}/auth/{app.channel}"
        state = oc.tokens.oauth_state(code.code, app.channel, sid)
        return _redirect(request, engine.adapters[app.channel].payer_auth_url(redirect_uri, state), cookies)
    limit = _limit(cfg, code)
    cfg_js = {"payUrl": f"/c/{code.code}/pay", "csrf": oc.tokens.csrf(sid), "form": oc.tokens.form(code.code, sid),
              "max": code.amount or limit, "fixed": yuan(code.amount).replace(",", "") if code.amount else None,
              "bridge": app.bridge, "code": code.code}
    if desktop is not None:
        cfg_js.update(payUrl=f"/c/{code.code}/pay?{urlencode({'as': app.channel})}", bridge="redirect")
    elif engine.adapters[app.channel].web_sdk:
        # the app's SDK must be configured for exactly this page's address: the one the
        # customer's web view shows, which behind a proxy is the public one
        page_url = _public_origin(request, cfg) + request.path_qs
        try:
            cfg_js["sdk"] = await engine.adapters[app.channel].web_sdk_config(page_url)
        except ChannelError as err:
            log.warning("onecode %s: the app's JS SDK could not be configured (%s)", app.channel, err.kind)
            return _message_page("暂时无法服务 · Unavailable", "off", "!", "支付渠道暂时不可用，请稍后再试",
                                 "The payment service is unavailable; try again soon", status=503,
                                 head=_head(code.merchant_name))
    return _pad_page(code, app, limit, cfg_js, cookies, request.secure, desktop=desktop is not None)


def _desktop_app(request: web.Request, oc: "OneCode", app: App | None, enabled: list[App]) -> App | None:
    """Development only (``onecode.desktop_pay_url`` set): the app a browser that is none
    of the apps chose to pay as (``?as=<channel>``), else None."""
    if not oc.settings.desktop_pay_url or (app is not None and app in enabled):
        return None
    chosen = APP_BY_CHANNEL.get(request.query.get("as", ""))
    return chosen if chosen in enabled else None


def _auth_failed(code: Code, status: int, zh: str, en: str) -> web.Response:
    again = f'<a class="btn" id="again" href="/c/{e(code.code)}">重试 Try again</a>'
    return _page("无法确认付款人 · Not signed in", _head(code.merchant_name) +
                 _state("bad", "!", zh, en, status="auth_failed") + again, status=status)


async def auth_callback(request: web.Request) -> web.StreamResponse:
    """Where the app's OAuth comes back: check ``state``, exchange the code for the payer id
    (server-side, with the app's secret), keep it in a signed cookie, go back to the page.
    A failure shows a page with a "try again" link, never another automatic redirect."""
    _, engine, oc, code = await _opened(request)
    if isinstance(code, web.Response):
        return code
    channel = request.match_info["channel"]
    app = APP_BY_CHANNEL.get(channel)
    sid = _sid(request)
    if app is None or app not in _enabled_apps(engine) or not _needs_oauth(engine, app) or sid is None:
        return _auth_failed(code, 403, "页面已过期，请重新扫码", "This page has expired; please scan the code again")
    try:
        oc.tokens.check_oauth_state(request.query.get("state", ""), code.code, channel, sid)
    except Forbidden:
        return _auth_failed(code, 403, "页面已过期，请重新扫码", "This page has expired; please scan the code again")
    try:
        payer = await engine.adapters[channel].payer_from_auth(request.query)
    except ChannelError as err:
        log.warning("onecode %s: payer authorisation failed (%s)", channel, err.kind)
        if err.retriable:
            return _auth_failed(code, 503, "暂时无法确认付款人，请重试", "The app could not confirm who is paying; try again")
        return _auth_failed(code, 403, "未能确认付款人，请重试", "The app did not confirm who is paying; try again")
    return _redirect(request, f"/c/{code.code}", {
        PAYER_COOKIE + channel: (oc.tokens.payer_cookie(channel, payer, sid), oc.settings.payer_days * 86400)})


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Forbidden("cross-site request refused")


async def pay(request: web.Request) -> web.Response:
    cfg, engine, auth, pool = _app_objects(request)
    oc = request.app[ONECODE]
    oc.pays.check(_client(request))
    _check_origin(request)
    sid = _sid(request)
    if sid is None or not _same(request.headers.get("X-CSRF-Token", ""), oc.tokens.csrf(sid)):
        raise Forbidden("missing or invalid CSRF token; reload the page")
    data = validation.parse_json_object(await read_body(request))
    for k in data:
        if k not in ("amount", "form"):
            raise InvalidRequest(f"unknown field {k[:64]!r}", field=k[:64])
    code_name = request.match_info["code"]
    form_id = oc.tokens.check_form(data.get("form"), code_name, sid)
    amount = parse_yuan(data.get("amount"))
    oc.code_pays.check(code_name)

    code = await _db(load_code(pool, code_name))
    if code is None:
        raise NotFound("no such code")
    if not code.usable:
        raise CodeDisabled("this code has been disabled")
    if code.amount is not None and amount != code.amount:
        raise InvalidRequest("the amount does not match this code's fixed amount", field="amount")
    enabled = _enabled_apps(engine)
    app = app_for(request.headers.get("User-Agent", ""))
    desktop = _desktop_app(request, oc, app, enabled)
    app = desktop or app
    if app is None or app not in enabled:
        raise InvalidRequest("open this code in a supported payment app", field="user_agent")
    merchant = await auth.merchants.get(code.merchant_id)
    if merchant is None or not merchant.active:
        raise CodeDisabled("this code has been disabled")
    method = method_for(engine.adapters[app.channel].methods)
    assert method is not None
    body: dict[str, Any] = {
        "merchant_order_no": f"oc_{form_id}", "amount": amount, "currency": "CNY", "method": str(method),
        "channel": app.channel, "subject": _subject(code), "metadata": {"source": "onecode", "code": code.code},
    }
    if code.store_id:
        body["store_id"] = code.store_id
    if method is Method.JSAPI:
        if _needs_oauth(engine, app) and desktop is None:
            payer = _payer_of(request, app.channel, sid)
            if payer is None:
                raise Forbidden("the app has not said who is paying; reload the page")
            body["payer"] = payer
        else:
            body["payer"] = oc.tokens.payer(app.channel, sid)
    req = validation.create_payment(body, max_expire_in=cfg.payments.max_expire_in)
    if method is Method.H5:
        # the provider's H5 cashier sends the customer back here, and on to the result
        back = f"/c/{code.code}/back/{form_id}/{oc.tokens.back(code.code, form_id)}"
        req = dataclasses.replace(req, return_url=_public_origin(request, cfg) + back)
    payment, created = await engine.create_payment(merchant, req)

    result_url = _result_url(request, code.code, payment.id, oc.tokens)
    answer = {"payment_id": payment.id, "status": str(payment.status), "channel": payment.channel,
              "method": str(payment.method), "amount": payment.amount, "result": result_url,
              # a fresh form for another attempt after the customer cancels in the app
              "form": oc.tokens.form(code.code, sid)}
    if not payment.status.final:
        if not payment.pay_params:
            raise Unavailable("the payment service did not answer in time; try again")
        answer.update(bridge=app.bridge, pay_params=payment.pay_params)
        if desktop is not None:   # development: the simulator's page plays the app
            base = engine.adapters[app.channel].settings.base_url.rstrip("/")
            answer.update(bridge="redirect", pay_params={"pay_url": oc.settings.desktop_pay_url.format(
                base_url=base, payment_id=quote(payment.id, safe=""), return_url=quote(result_url, safe=""))})
    return json_response(answer, 201 if created else 200)


async def back_from_cashier(request: web.Request) -> web.Response:
    """Where JD's H5 cashier sends the customer (``callbackUrl``, by GET or POST): on to the
    result page of the payment that form made. What the cashier sends along is ignored: the
    result page shows paycore's own status. Anything amiss leads back to the code's page."""
    _, engine, auth, pool = _app_objects(request)
    oc = request.app[ONECODE]
    oc.pages.check(_client(request))
    code_name, form_id = request.match_info["code"], request.match_info["form"]
    start = _redirect(request, f"/c/{quote(code_name, safe='')}", {})
    if not _same(request.match_info["mac"], oc.tokens.back(code_name, form_id)):
        return start
    code = await _db(load_code(pool, code_name))
    merchant = await auth.merchants.get(code.merchant_id) if code is not None else None
    if code is None or merchant is None:
        return start
    try:
        payment = await engine.get_payment_by_order(merchant, f"oc_{form_id}")
    except NotFound:
        return start
    return _redirect(request, _result_url(request, code.code, payment.id, oc.tokens), {})


def _subject(code: Code) -> str:
    name = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", code.merchant_name).strip() or code.merchant_id
    return name[:128]


def _result_url(request: web.Request, code: str, payment_id: str, tokens: Tokens) -> str:
    origin = f"{request.scheme}://{request.host}"
    return f"{origin}/c/{code}/result/{payment_id}?{urlencode({'t': tokens.result(code, payment_id)})}"


async def _payment_for(request: web.Request):
    """The payment named in the path, if the token proves it was made through this code."""
    _, engine, auth, pool = _app_objects(request)
    code_name, pid = request.match_info["code"], request.match_info["payment_id"]
    expected = request.app[ONECODE].tokens.result(code_name, pid)
    if not _same(request.query.get("t", ""), expected):
        raise NotFound("no such payment")
    code = await _db(load_code(pool, code_name))
    if code is None:
        raise NotFound("no such payment")
    merchant = await auth.merchants.get(code.merchant_id)
    if merchant is None:
        raise NotFound("no such payment")
    return code, merchant, await engine.get_payment(merchant, pid)


_RESULTS = {
    "SUCCEEDED": ("ok", "✓", "支付成功", "Payment successful"),
    "FAILED": ("bad", "✕", "支付失败", "Payment failed"),
    "CLOSED": ("off", "–", "订单已关闭", "The order was closed; nothing was charged"),
    "REVERSED": ("off", "↺", "支付已撤销", "The payment was reversed; the money is returned"),
    "PENDING": ("wait", "…", "等待支付结果", "Waiting for the payment result"),
    "PROCESSING": ("wait", "…", "正在确认支付结果", "Confirming the payment"),
}


async def result_page(request: web.Request) -> web.Response:
    request.app[ONECODE].pages.check(_client(request))
    try:
        code, _, p = await _payment_for(request)
    except NotFound:
        return _message_page("找不到订单 · Not found", "off", "?", "找不到这笔订单", "No such payment", status=404)
    except Unavailable:
        return _message_page("暂时无法服务 · Unavailable", "off", "!", "系统繁忙，请稍后刷新",
                             "The service is busy; please reload soon", status=503)
    status = str(p.status)
    kind, icon, zh, en = _RESULTS[status]
    extra = f'<div class="big" id="paid-amount">¥{yuan(p.amount)}</div><div class="en">{e(code.merchant_name)}</div>'
    if status == "FAILED" and p.failure:
        extra += '<p class="note">请更换付款方式或稍后再试 · Try another way to pay or try again later</p>'
    script, cfg = "", None
    if not p.status.final:
        extra += '<div class="spin"></div><p class="note" id="hint">请在应用中完成支付 · Finish paying in the app</p>'
        script = _RESULT_JS
        cfg = {"statusUrl": f"/c/{code.code}/status/{p.id}?{urlencode({'t': request.query['t']})}"}
    body = _head(code.merchant_name) + _state(kind, icon, zh, en, extra, status)
    if p.status.final:
        body += f'<a class="btn secondary" id="again" href="/c/{e(code.code)}">再付一笔 Pay again</a>'
    return _page(f"{zh} · {en}", body, script=script, cfg=cfg)


async def status(request: web.Request) -> web.Response:
    request.app[ONECODE].pages.check(_client(request))
    raw = request.query.get("wait", "0")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_WAIT:   # "²".isdigit(), but int("²") fails
        raise InvalidRequest(f"wait must be 0–{MAX_WAIT}", field="wait")
    _, engine, _, _ = _app_objects(request)
    _, merchant, p = await _payment_for(request)
    if int(raw):
        p = await engine.wait(merchant, p, float(raw))
    return json_response({"payment_id": p.id, "status": str(p.status), "final": p.status.final,
                          "amount": p.amount})


def setup(app: web.Application) -> None:
    """Register the one-code routes on paycore's app (called from ``create_app``)."""
    cfg = app[CONFIG]
    s = cfg.onecode
    app[ONECODE] = OneCode(tokens=Tokens(cfg.security.master_key), settings=s,
                           trusted=trusted_networks(s.trusted_proxies),
                           pages=IpLimiter(rate=s.page_rate, burst=s.page_burst),
                           pays=IpLimiter(rate=s.pay_rate, burst=s.pay_burst),
                           code_pays=IpLimiter(rate=s.code_pay_rate, burst=s.code_pay_burst))
    r = app.router
    r.add_get("/c/{code}", code_page)
    r.add_get("/c/{code}/auth/{channel}", auth_callback)
    r.add_route("GET", "/c/{code}/back/{form}/{mac}", back_from_cashier)
    r.add_route("POST", "/c/{code}/back/{form}/{mac}", back_from_cashier)
    r.add_post("/c/{code}/pay", pay)
    r.add_get("/c/{code}/result/{payment_id}", result_page)
    r.add_get("/c/{code}/status/{payment_id}", status)
