"""Shared machinery for the provider simulators.

Each ``channels/<name>/simulator.py`` speaks its provider's wire protocol and
signing; this module holds what every simulator has in common: the order
book, the behaviour chosen by the request, the customer's side (scanning a
QR, confirming in the app), asynchronous notifications with retries, the
daily statement's rows, configurable latency and injectable faults.

Behaviour is chosen by the last two digits of the amount in fen, so tests and
load tests need no set-up (see :class:`Scenario`). Any other amount is a
plain success.
"""
from __future__ import annotations

import asyncio
import enum
import html
import itertools
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web

from channels.secrets import Secret


CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")   # no daylight saving since 1991
log = logging.getLogger("paycore.simulator")


class Scenario(enum.IntEnum):
    """``amount % 100`` → what the provider does.

    ======  =================================================================
    11      USER_PAYING_THEN_SUCCESS: pay answers "user paying"; the first two
            queries too; the third query (or later) finds it paid
    12      USER_PAYING_FOREVER: "user paying" on every query until reversed
            or closed (the platform must reverse/close)
    13      DECLINED: pay is declined with the provider's insufficient-funds code
    14      SYSTEM_ERROR: pay answers the provider's system error (or HTTP 500
            where the provider does that); the payment did succeed, a query
            finds it
    15      SLOW: pay answers after ``slow_seconds`` (beyond the platform's
            timeout); the payment succeeds; a query finds it
    16      DUPLICATE_NOTIFY: every notification is sent three times
    17      OUT_OF_ORDER_NOTIFY: the payment notification is sent before the
            synchronous answer, then again after it
    18      REFUND_DECLINED: refunds of this payment are refused
    19      SYSTEM_ERROR_THEN_FAILED: system error on pay; a query finds the
            payment failed (no money taken)
    21      QR_PAYABLE_AFTER_CLOSE: a QR that is not found (query, close)
            until it is scanned, and that a close does not stop: the customer
            can still pay it (Alipay precreate; a close racing the scan).
            A cancel that leaves a tombstone (Alipay trade.cancel) does stop it
    22      REFUND_DELAYED: a refund is answered with a system error although
            it went through, and queries find it only ``refund_delay`` seconds later
    23      PAY_AFTER_REVERSE: the pay request is answered with a system error
            and reaches the provider's books only ``late_pay_delay`` seconds
            later — after a reverse that found nothing (unless the reverse left
            a tombstone); then the customer is charged
    24      QUERY_LAG: queries answer "no such order" for ``query_lag``
            seconds after the order was created, whatever happened
    25      AMOUNT_DIFFERS: pay answers a system error; queries and
            notifications report the payment with one fen less than asked
    ======  =================================================================
    """

    SUCCESS = 0
    USER_PAYING_THEN_SUCCESS = 11
    USER_PAYING_FOREVER = 12
    DECLINED = 13
    SYSTEM_ERROR = 14
    SLOW = 15
    DUPLICATE_NOTIFY = 16
    OUT_OF_ORDER_NOTIFY = 17
    REFUND_DECLINED = 18
    SYSTEM_ERROR_THEN_FAILED = 19
    QR_PAYABLE_AFTER_CLOSE = 21
    REFUND_DELAYED = 22
    PAY_AFTER_REVERSE = 23
    QUERY_LAG = 24
    AMOUNT_DIFFERS = 25

    @classmethod
    def for_amount(cls, amount: int) -> "Scenario":
        try:
            return cls(amount % 100)
        except ValueError:
            return cls.SUCCESS


#: queries answered "user paying" before success in USER_PAYING_THEN_SUCCESS
USER_PAYING_QUERIES = 2


class OrderState(enum.StrEnum):
    """Provider-neutral order states; each simulator maps them to its own words."""

    NOTPAY = "NOTPAY"
    USERPAYING = "USERPAYING"
    SUCCESS = "SUCCESS"
    PAYERROR = "PAYERROR"
    CLOSED = "CLOSED"
    REVOKED = "REVOKED"
    REFUND = "REFUND"  # paid, then (partly) refunded


@dataclass
class SimRefund:
    out_refund_no: str
    amount: int
    channel_refund_no: str
    status: str = "SUCCESS"  # SUCCESS | PROCESSING | FAILED
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimOrder:
    out_trade_no: str
    amount: int
    method: str
    notify_url: str | None
    channel_trade_no: str
    scenario: Scenario
    state: OrderState = OrderState.NOTPAY
    mch_id: str = ""
    queries: int = 0
    qr_code: str | None = None
    prepay_id: str | None = None
    auth_code: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    paid_at: datetime | None = None
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    pay_calls: int = 0        # how often the platform asked to pay (a double charge shows here)
    reverse_calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds.values() if r.status != "FAILED")

    def to_json(self) -> dict[str, Any]:
        return {
            "out_trade_no": self.out_trade_no, "amount": self.amount, "method": self.method,
            "state": str(self.state), "scenario": self.scenario.name, "queries": self.queries,
            "channel_trade_no": self.channel_trade_no, "pay_calls": self.pay_calls,
            "reverse_calls": self.reverse_calls, "refunded": self.refunded,
            "refunds": [{"out_refund_no": r.out_refund_no, "amount": r.amount, "status": r.status}
                        for r in self.refunds.values()],
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class SimSettings:
    """What a simulator is started with. Key paths point at the generated dev keys.

    ``provider_private_key_file`` signs the simulator's answers and
    notifications; ``paycore_public_key_file`` verifies paycore's requests.
    """

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    mch_id: str = ""
    app_id: str = ""
    serial_no: str = ""               # paycore's certificate serial as the provider knows it
    provider_serial_no: str = ""      # the simulator's own certificate serial
    provider_private_key_file: str = ""
    paycore_public_key_file: str = ""
    secret: Secret = field(default_factory=lambda: Secret(""))
    latency_ms: float = 0.0           # added to every answer (load tests)
    slow_seconds: float = 4.0         # the SLOW scenario's delay
    notify_retries: int = 4           # further attempts after a failed notification
    notify_retry_delay: float = 0.5
    refund_delay: float = 4.0         # REFUND_DELAYED: how long a done refund stays invisible
    late_pay_delay: float = 1.0       # PAY_AFTER_REVERSE: how late the pay reaches the books
    query_lag: float = 1.0            # QUERY_LAG: how long queries lag behind
    extra: dict[str, Any] = field(default_factory=dict)


NotifyBuilder = Callable[[SimOrder, "SimRefund | None"], "tuple[str, dict[str, str], bytes]"]
"""(order, refund or None) → (url, headers, body) of one notification."""


class SimState:
    """The order book and side effects of one simulator."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.orders: dict[str, SimOrder] = {}
        self.by_qr: dict[str, str] = {}
        self.by_channel_no: dict[str, str] = {}
        self.fault: str | None = None         # None | "http500" | "hang" | "garbage" | "reset"
        self.notify_builder: NotifyBuilder | None = None
        self.refund_notify_builder: NotifyBuilder | None = None
        #: the app's check of a JS bridge call (/_sim/app/bridge's body): why it refuses, or None
        self.bridge_check: Callable[[dict[str, Any]], str | None] | None = None
        self.notifications_sent = 0
        self.session: aiohttp.ClientSession | None = None
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    # -- ids ------------------------------------------------------------
    def new_trade_no(self, prefix: str = "") -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
        return f"{prefix}{stamp}{next(self._seq):08d}{random.randrange(10**6):06d}"

    @staticmethod
    def token(n: int = 16) -> str:
        return secrets.token_hex(n // 2)

    # -- orders ---------------------------------------------------------
    def add(self, order: SimOrder) -> SimOrder:
        self.orders[order.out_trade_no] = order
        self.by_channel_no[order.channel_trade_no] = order.out_trade_no
        if order.qr_code:
            self.by_qr[order.qr_code] = order.out_trade_no
        return order

    def get(self, out_trade_no: str | None = None, channel_trade_no: str | None = None) -> SimOrder | None:
        if out_trade_no and out_trade_no in self.orders:
            return self.orders[out_trade_no]
        if channel_trade_no and channel_trade_no in self.by_channel_no:
            return self.orders[self.by_channel_no[channel_trade_no]]
        return None

    def lagging(self, order: SimOrder) -> bool:
        """QUERY_LAG: the provider's query does not see this order yet."""
        return (order.scenario is Scenario.QUERY_LAG
                and (datetime.now(timezone.utc) - order.created_at).total_seconds() < self.settings.query_lag)

    def on_query(self, order: SimOrder) -> SimOrder:
        """Advance the scenario by one query (USER_PAYING_THEN_SUCCESS)."""
        order.queries += 1
        if (order.state is OrderState.USERPAYING and order.scenario is Scenario.USER_PAYING_THEN_SUCCESS
                and order.queries > USER_PAYING_QUERIES):
            self.mark_paid(order)
        return order

    def mark_paid(self, order: SimOrder, notify: bool = True) -> None:
        if order.state in (OrderState.SUCCESS, OrderState.REFUND):
            return
        order.state = OrderState.SUCCESS
        order.paid_at = datetime.now(timezone.utc)
        if notify:
            self.notify(order)

    async def barcode_notifications(self, order: SimOrder) -> None:
        """Notifications a barcode payment triggers by scenario, called before answering:
        OUT_OF_ORDER_NOTIFY delivers one *now* (before the synchronous answer) and
        another later; DUPLICATE_NOTIFY sends three. Other scenarios send none
        for barcode (the synchronous answer and queries carry the outcome)."""
        if order.scenario is Scenario.OUT_OF_ORDER_NOTIFY and self.notify_builder and order.notify_url:
            await self._deliver(self.notify_builder, order, None, delay=0)
            self.spawn(self._deliver(self.notify_builder, order, None, delay=0.3))
        elif order.scenario is Scenario.DUPLICATE_NOTIFY:
            self.notify(order)

    # -- notifications --------------------------------------------------
    def notify(self, order: SimOrder, refund: SimRefund | None = None) -> None:
        builder = self.refund_notify_builder if refund else self.notify_builder
        if builder is None or (refund is None and not order.notify_url):
            return   # a refund may carry its own notify URL even when the payment had none
        times = 3 if order.scenario is Scenario.DUPLICATE_NOTIFY else 1
        for i in range(times):
            self.spawn(self._deliver(builder, order, refund, delay=0.05 * i))

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, builder: NotifyBuilder, order: SimOrder, refund: SimRefund | None,
                       delay: float) -> None:
        await self.deliver(lambda: builder(order, refund), order.out_trade_no, delay)

    async def deliver(self, build: Callable[[], "tuple[str, dict[str, str], bytes]"], what: str,
                      delay: float = 0.0) -> int | None:
        """Post ``build()`` until it is acknowledged (2xx) or the retries run out; the last HTTP
        status, None when nothing answered. Rebuilt each attempt: a fresh timestamp and nonce,
        as providers do."""
        if delay:
            await asyncio.sleep(delay)
        status: int | None = None
        for attempt in range(1 + self.settings.notify_retries):
            url, headers, body = build()
            try:
                assert self.session is not None
                async with self.session.post(url, data=body, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
                    status = resp.status
                    if resp.status < 300:
                        self.notifications_sent += 1
                        return status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(self.settings.notify_retry_delay * (2 ** attempt))
        log.warning("%s: gave up notifying %s", self.settings.name, what)
        return status

    # -- statement rows -------------------------------------------------
    def statement_rows(self, day: str) -> list[tuple[str, SimOrder, SimRefund | None]]:
        """("payment"|"refund", order, refund) for every money movement on ``day`` (YYYY-MM-DD, China
        time: the providers' statements count days from midnight in Beijing)."""
        rows: list[tuple[str, SimOrder, SimRefund | None]] = []
        for o in self.orders.values():
            if o.paid_at and o.paid_at.astimezone(CHINA).date().isoformat() == day:
                rows.append(("payment", o, None))
            for r in o.refunds.values():
                if r.status == "SUCCESS" and r.created_at.astimezone(CHINA).date().isoformat() == day:
                    rows.append(("refund", o, r))
        return rows


STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)


def base_app(settings: SimSettings) -> tuple[web.Application, SimState]:
    """An aiohttp app with the common simulator routes and middleware.

    Common routes (not part of any provider's API; they play the customer and
    the test operator):

    * ``POST /_sim/customer/pay`` ``{"out_trade_no"|"qr_code"|"prepay_id": …}``
      – the customer scans the QR / confirms in the app: the order is paid
      (or declined, by scenario) and the notification is sent.
    * ``GET /_sim/app/confirm?out_trade_no=…&return_url=…`` – the app's confirm
      screen for an in-app (jsapi/h5/app) order: a Confirm button that POSTs
      to ``/_sim/customer/pay``, then goes back to ``return_url``.
    * ``POST /_sim/app/bridge`` – what the app does when the page invokes its JS
      bridge (pay, or the customer cancels, or the app fails): :func:`bridge_pay`.
    * ``GET /_sim/orders/{out_trade_no}`` – the provider's view of one order.
    * ``POST /_sim/fault`` ``{"mode": null|"http500"|"hang"|"garbage"|"reset"}``
      – every provider endpoint misbehaves until cleared.
    * ``GET /_sim/health``.
    """
    state = SimState(settings)

    @web.middleware
    async def behaviour(request: web.Request, handler):
        if request.path.startswith("/_sim/"):
            return await handler(request)
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        fault = state.fault
        if fault == "http500":
            return web.Response(status=500, text="Internal Server Error")
        if fault == "hang":
            await asyncio.sleep(3600)
        if fault == "garbage":
            return web.Response(status=200, body=b"\x00<html>garbage\xff", content_type="text/html")
        if fault == "reset":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise web.HTTPInternalServerError()
        return await handler(request)

    app = web.Application(middlewares=[behaviour], client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = state

    async def customer_pay(request: web.Request) -> web.Response:
        data = await request.json(loads=orjson.loads)
        key = data.get("out_trade_no")
        if not key and data.get("qr_code"):
            key = state.by_qr.get(data["qr_code"])
        if not key and data.get("prepay_id"):
            key = next((o.out_trade_no for o in state.orders.values() if o.prepay_id == data["prepay_id"]), None)
        order = state.get(key)
        if order is None:
            return web.json_response({"error": "no such order"}, status=404)
        payable = (OrderState.NOTPAY, OrderState.USERPAYING)
        if order.scenario is Scenario.QR_PAYABLE_AFTER_CLOSE:
            payable += (OrderState.CLOSED,)   # the close did not stop the scan; a cancel's tombstone (REVOKED) does
        if order.state not in payable:
            return web.json_response({"error": f"order is {order.state}"}, status=409)
        if order.scenario is Scenario.DECLINED:
            order.state = OrderState.PAYERROR
            state.notify(order)
        else:
            state.mark_paid(order)
        return web.json_response(order.to_json())

    async def get_order(request: web.Request) -> web.Response:
        order = state.get(request.match_info["out_trade_no"])
        if order is None:
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response(order.to_json())

    async def set_fault(request: web.Request) -> web.Response:
        data = await request.json(loads=orjson.loads)
        state.fault = data.get("mode")
        return web.json_response({"fault": state.fault})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"channel": settings.name, "orders": len(state.orders),
                                  "notifications_sent": state.notifications_sent})

    app.router.add_post("/_sim/customer/pay", customer_pay)
    app.router.add_get("/_sim/orders/{out_trade_no}", get_order)
    app.router.add_post("/_sim/fault", set_fault)
    app.router.add_get("/_sim/health", health)
    app.router.add_get("/_sim/app/confirm", app_confirm)
    app.router.add_post("/_sim/app/bridge", bridge_pay)

    async def session_ctx(app: web.Application):
        state.session = aiohttp.ClientSession()
        yield
        for t in list(state._tasks):
            t.cancel()
        await state.session.close()

    app.cleanup_ctx.append(session_ctx)
    return app, state


async def slow_if(order_or_scenario: SimOrder | Scenario, settings: SimSettings) -> None:
    """Sleep past the platform's timeout in the SLOW scenario."""
    sc = order_or_scenario.scenario if isinstance(order_or_scenario, SimOrder) else order_or_scenario
    if sc is Scenario.SLOW:
        await asyncio.sleep(settings.slow_seconds)


def barcode_outcome(order: SimOrder) -> None:
    """Apply the scenario to a new barcode order (state only; the simulator answers).

    SUCCESS/SLOW/DUPLICATE/OUT_OF_ORDER/SYSTEM_ERROR/REFUND_DECLINED → paid;
    USER_PAYING_* → USERPAYING; DECLINED/SYSTEM_ERROR_THEN_FAILED → PAYERROR.
    """
    sc = order.scenario
    if sc in (Scenario.USER_PAYING_THEN_SUCCESS, Scenario.USER_PAYING_FOREVER):
        order.state = OrderState.USERPAYING
    elif sc in (Scenario.DECLINED, Scenario.SYSTEM_ERROR_THEN_FAILED):
        order.state = OrderState.PAYERROR
    else:
        order.state = OrderState.SUCCESS
        order.paid_at = datetime.now(timezone.utc)


def now_ts() -> int:
    return int(time.time())


# -- the customer's app: a confirm screen for in-app orders ----------------------
def find_order(state: SimState, query: Any) -> SimOrder | None:
    """An order by any key the platform may know: out_trade_no (also as the
    provider rewrote it, e.g. without ``_``), channel_trade_no, prepay_id/tn, qr_code."""
    key = query.get("out_trade_no") or ""
    order = state.get(key, query.get("channel_trade_no"))
    if order is None and query.get("prepay_id"):
        order = next((o for o in state.orders.values() if o.prepay_id == query["prepay_id"]), None)
    if order is None and query.get("qr_code") in state.by_qr:
        order = state.get(state.by_qr[query["qr_code"]])
    if order is None and key:
        plain = "".join(c for c in key.lower() if c.isalnum())
        order = next((o for o in state.orders.values()
                      if "".join(c for c in o.out_trade_no.lower() if c.isalnum()) == plain), None)
    return order


_CONFIRM_PAGE = """<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{name} · 确认付款</title>
<style>body{{font:16px/1.5 sans-serif;margin:0;background:#f5f5f5;text-align:center}}
header{{background:#333;color:#fff;padding:12px;font-size:14px}}.amt{{font-size:40px;font-weight:600;margin:32px 0 4px}}
button{{display:block;width:calc(100% - 32px);margin:12px 16px;padding:14px;font-size:18px;border:0;border-radius:8px}}
#confirm{{background:#07c160;color:#fff}}#cancel{{background:#fff;color:#333}}#msg{{color:#c00;min-height:24px}}</style>
</head><body><header>{name} sandbox app · 模拟应用付款</header>
<div class="amt" id="sim-amount">¥{amount}</div><div id="sim-order">{out_trade_no}</div>
<p id="msg"></p><button id="confirm" type="button">确认付款 Confirm</button>
<button id="cancel" type="button">取消 Cancel</button>
<script>(function(){{var c={cfg};
function back(){{if(c.ret){{location.href=c.ret;}}}}
document.getElementById("cancel").onclick=back;
document.getElementById("confirm").onclick=function(){{this.disabled=true;
var x=new XMLHttpRequest();x.open("POST","/_sim/customer/pay");x.setRequestHeader("Content-Type","application/json");
x.onload=function(){{if(x.status<300||x.status===409){{document.getElementById("msg").textContent="OK";back();}}
else{{document.getElementById("msg").textContent="error "+x.status;}}}};
x.send(JSON.stringify({{out_trade_no:c.order}}));}};}})();</script></body></html>"""


async def app_confirm(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    order = find_order(state, request.query)
    if order is None:
        return web.Response(status=404, text="no such order", content_type="text/plain")
    ret = request.query.get("return_url", "")
    if not ret.startswith(("http://", "https://")):
        ret = ""
    cfg = orjson.dumps({"order": order.out_trade_no, "ret": ret}).decode().replace("<", "\\u003c")
    page = _CONFIRM_PAGE.format(name=html.escape(state.settings.name), out_trade_no=html.escape(order.out_trade_no),
                                amount=f"{order.amount // 100}.{order.amount % 100:02d}", cfg=cfg)
    return web.Response(text=page, content_type="text/html", charset="utf-8")


# -- the app's OAuth: a silent authorisation and the one-time code it issues ----------
OAUTH_CODE_TTL = 300.0


class OAuthServer:
    """The provider's OAuth for the payer id, as a silent authorisation plays it.

    The customer is the app's logged-in user: the first authorisation in a browser
    gives it a payer id (kept in the cookie ``sim_<channel>_payer`` on the
    simulator's host, as the app keeps its login), later ones the same id. Each
    authorisation issues a one-time code, good for :data:`OAUTH_CODE_TTL` seconds,
    which :meth:`redeem` turns into that payer id once.
    """

    def __init__(self, settings: SimSettings, new_payer_id: Callable[[], str]) -> None:
        self.settings = settings
        self.new_payer_id = new_payer_id
        self.cookie = f"sim_{settings.name}_payer"
        self.codes: dict[str, tuple[str, float]] = {}
        self.redeemed = 0

    @property
    def app_secret(self) -> str:
        return str(self.settings.extra.get("app_secret", ""))

    def authorize(self, request: web.Request, *, client_id: str, scope: str, code_param: str,
                  more: dict[str, str] | None = None) -> web.StreamResponse:
        """Check the link's parameters (the client id param, ``scope``, ``redirect_uri``)
        and go back to ``redirect_uri`` with ``<code_param>=…&state=…``; a link the
        provider would refuse gets an error page, as the real ones show."""
        q = request.query
        redirect = q.get("redirect_uri", "")
        if q.get(client_id) != (self.settings.extra.get("oauth_client_id") or self.settings.app_id):
            return web.Response(status=400, text=f"{client_id} 参数错误", content_type="text/plain")
        if q.get("scope") != scope or not redirect.startswith(("http://", "https://")):
            return web.Response(status=400, text="scope 或 redirect_uri 参数错误", content_type="text/plain")
        payer = request.cookies.get(self.cookie) or self.new_payer_id()
        code = secrets.token_hex(16)
        now = time.monotonic()
        self.codes = {c: v for c, v in self.codes.items() if now - v[1] < OAUTH_CODE_TTL}
        self.codes[code] = (payer, now)
        params = {code_param: code, **(more or {}), "state": q.get("state", "")}
        sep = "&" if "?" in redirect else "?"
        resp = web.Response(status=302, headers={"Location": redirect + sep + urlencode(params)})
        resp.set_cookie(self.cookie, payer, max_age=365 * 24 * 3600, httponly=True, samesite="Lax")
        return resp

    def redeem(self, code: str) -> str | None:
        """The payer id of a fresh, unused code (and the code is spent), else None."""
        payer, issued = self.codes.pop(code, ("", 0.0))
        if not payer or time.monotonic() - issued >= OAUTH_CODE_TTL:
            return None
        self.redeemed += 1
        return payer


# -- the customer's app: its JS bridge, played by the simulator's page ------------------
async def bridge_pay(request: web.Request) -> web.Response:
    """``POST /_sim/app/bridge`` ``{"out_trade_no"|"prepay_id"|"channel_trade_no": …, "action":
    "pay"|"cancel"|"fail"|"config"}``: what the app does when its JS bridge is invoked (tests
    inject a bridge into the page that calls this). ``pay`` pays (or declines, by scenario)
    as the customer's confirmation does; ``cancel`` / ``fail`` leave the order unpaid.
    Answers ``{"result": "paid"|"declined"|"cancelled"|"failed", "order": …}``. Where the
    app checks what the page configured its SDK with (``SimState.bridge_check``, 云闪付's
    upsdk.config), a configuration it refuses is ``{"result": "refused", "error": …}``
    whatever the action; ``config`` only asks for that check (``{"result": "ok"}``)."""
    state = request.app[STATE_KEY]
    data = await request.json(loads=orjson.loads)
    if state.bridge_check is not None:     # the app checks the page's SDK configuration first
        refused = state.bridge_check(data)
        if refused:
            return web.json_response({"result": "refused", "error": refused})
    if data.get("action") == "config":
        return web.json_response({"result": "ok"})
    order = find_order(state, data)
    if order is None:
        return web.json_response({"error": "no such order"}, status=404)
    action = data.get("action", "pay")
    if action != "pay":
        return web.json_response({"result": "cancelled" if action == "cancel" else "failed",
                                  "order": order.to_json()})
    if order.state not in (OrderState.NOTPAY, OrderState.USERPAYING):
        return web.json_response({"error": f"order is {order.state}"}, status=409)
    if order.scenario is Scenario.DECLINED:
        order.state = OrderState.PAYERROR
        state.notify(order)
        return web.json_response({"result": "declined", "order": order.to_json()})
    state.mark_paid(order)
    return web.json_response({"result": "paid", "order": order.to_json()})
