"""bankwallet simulator: the bank's wallet core as paycore sees it.

Checks every request's HMAC (constant-time), its timestamp (±300 s) and its
nonce (no reuse within the window) and refuses a failure with an unsigned 401;
signs every other answer, its notifications and its statement the same way.
The amount's last two digits choose the behaviour
(:class:`simulators.kit.Scenario`).

Splits and payouts are synchronous, on :mod:`simulators.sharekit`'s book: a
split of a paid order may share what is left of it (its amount less refunds
and earlier splits, else INSUFFICIENT_SHAREABLE) to bound receivers only
(else RECEIVER_NOT_BOUND); a receiver amount ending in 14 is recorded and
answered SYSTEM_ERROR. Payouts: to an account containing ``frozen`` →
FAILED ACCOUNT_FROZEN, a name ``不符`` → NAME_MISMATCH, amount 13 →
INSUFFICIENT_BALANCE, 14 → done and 19 → failed, both answered SYSTEM_ERROR,
15 → answered late; a final payout is notified to its notify_url.
"""
from __future__ import annotations

import secrets
import time
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from simulators import walletkit
from channels.bankwallet import transformers as tf
from simulators.kit import OrderState, Scenario, SimOrder, SimRefund, SimSettings, base_app, slow_if
from simulators.sharekit import BOOK_KEY, ShareBook, SimShare, SimTransfer

Answer = tuple[int, dict[str, Any]]

STATUS_WORDS = {
    OrderState.NOTPAY: "PENDING", OrderState.USERPAYING: "PAYING", OrderState.SUCCESS: "SUCCESS",
    OrderState.PAYERROR: "FAILED", OrderState.CLOSED: "CLOSED", OrderState.REVOKED: "REVERSED",
    OrderState.REFUND: "REFUNDED",
}
_REFUND_ERRORS = {
    walletkit.REFUND_DECLINED: ("REFUND_NOT_ALLOWED", "refunds of this payment are not allowed"),
    walletkit.REFUND_NOT_PAID: ("ORDER_NOT_PAID", "the payment holds no money"),
    walletkit.REFUND_EXCEEDS: ("REFUND_AMOUNT_EXCEEDED", "more than the refundable amount"),
}
METHODS = ("barcode", "wallet", "qr")


def payment_obj(order: SimOrder) -> dict[str, Any]:
    d: dict[str, Any] = {
        "merchant_id": order.mch_id, "out_trade_no": order.out_trade_no, "trade_no": order.channel_trade_no,
        "amount": order.amount, "method": order.method, "status": STATUS_WORDS[order.state],
        "paid_at": order.paid_at, "refunded_amount": order.refunded,
    }
    if order.qr_code:
        d["qr_code"] = order.qr_code
    if order.state is OrderState.PAYERROR:
        d.update(error_code="INSUFFICIENT_BALANCE", error_message="wallet balance is not enough")
    return d


def refund_obj(order: SimOrder, refund: SimRefund) -> dict[str, Any]:
    return {"out_trade_no": order.out_trade_no, "out_refund_no": refund.out_refund_no,
            "refund_no": refund.channel_refund_no, "amount": refund.amount, "status": refund.status,
            "refunded_at": refund.created_at}


def _error(status: int, code: str, message: str) -> Answer:
    return status, {"error_code": code, "error_message": message}


def create_app(settings: SimSettings) -> web.Application:
    app, state = base_app(settings)
    key = settings.secret.get_bytes()
    nonces = walletkit.NonceBook(tf.REPLAY_WINDOW)
    qr_base = str(settings.extra.get("qr_base", "https://wallet.bank.example/q/"))

    def signed(status: int, body: bytes, content_type: str = "application/json") -> web.Response:
        headers = tf.signed_headers(key, str(int(time.time())), secrets.token_hex(16), body, content_type)
        return web.Response(status=status, body=body, headers=headers)

    def unauthorized(code: str) -> web.Response:
        return web.Response(status=401, content_type="application/json",
                            body=orjson.dumps({"error_code": code, "error_message": "authentication failed"}))

    async def authenticate(request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        body = await request.read()
        h = request.headers
        if not tf.verify_headers(key, h, body):
            return None, unauthorized("INVALID_SIGNATURE")
        now = time.time()
        if not tf.fresh(h.get(tf.TS_HEADER), now):
            return None, unauthorized("TIMESTAMP_EXPIRED")
        if not nonces.add(h[tf.NONCE_HEADER], now):
            return None, unauthorized("NONCE_REUSED")
        try:
            d = orjson.loads(body)
        except orjson.JSONDecodeError:
            d = None
        if not isinstance(d, dict) or d.get("merchant_id") != settings.mch_id:
            return None, signed(400, orjson.dumps({"error_code": "INVALID_REQUEST",
                                                   "error_message": "bad JSON or unknown merchant"}))
        return d, None

    def endpoint(handler: Callable[[dict[str, Any]], Awaitable[Answer]]):
        async def serve(request: web.Request) -> web.Response:
            d, refusal = await authenticate(request)
            if refusal is not None:
                return refusal
            status, payload = await handler(d)  # type: ignore[arg-type]
            return signed(status, tf.encode(payload))
        return serve

    def find(d: dict[str, Any]) -> SimOrder | None:
        no = d.get("out_trade_no")
        return state.get(no) if isinstance(no, str) else None

    async def pay(d: dict[str, Any]) -> Answer:
        method, amount, no = d.get("method"), d.get("amount"), d.get("out_trade_no")
        if method not in METHODS or not isinstance(no, str) or not no or not isinstance(amount, int) or amount <= 0:
            return _error(400, "INVALID_REQUEST", "out_trade_no, amount and method are required")
        if method == "wallet" and not d.get("user_id"):
            return _error(400, "INVALID_REQUEST", "user_id is required for method wallet")
        code = d.get("auth_code")
        if method == "barcode" and not (isinstance(code, str) and code.isdigit() and len(code) == 18):
            return 200, {"out_trade_no": no, "amount": amount, "method": method, "status": "FAILED",
                         "error_code": "INVALID_PAYMENT_CODE", "error_message": "payment code is not valid"}
        qr = f"{qr_base}{secrets.token_urlsafe(12)}" if method == "qr" else None
        order, created = walletkit.open_order(state, out_trade_no=no, amount=amount, method=method,
                                           notify_url=d.get("notify_url"), mch_id=settings.mch_id,
                                           trade_no_prefix="BW", auth_code=code, qr_code=qr)
        if created and method == "qr":
            await slow_if(order, settings)
        elif created:
            order.extra["user_id"] = d.get("user_id")
            await walletkit.settle_barcode(state, settings, order)
            if walletkit.answers_system_error(order, created):
                return _error(500, tf.SYSTEM_ERROR, "system error, query the payment")
        return 200, payment_obj(order)

    async def query(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return _error(404, tf.ORDER_NOT_FOUND, "no such payment")
        return 200, payment_obj(state.on_query(order))

    async def reverse(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return _error(404, tf.ORDER_NOT_FOUND, "no such payment")
        if not walletkit.reverse_order(order):
            return _error(409, "ORDER_NOT_REVERSIBLE", "a refunded payment cannot be reversed")
        return 200, payment_obj(order)

    async def close(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return _error(404, tf.ORDER_NOT_FOUND, "no such payment")
        walletkit.close_order(order)          # a paid order stays paid: the answer says so
        return 200, payment_obj(order)

    async def refund(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return _error(404, tf.ORDER_NOT_FOUND, "no such payment")
        rno, amount = d.get("out_refund_no"), d.get("amount")
        if not isinstance(rno, str) or not rno or not isinstance(amount, int):
            return _error(400, "INVALID_REQUEST", "out_refund_no and amount are required")
        got = walletkit.refund_order(state, order, out_refund_no=rno, amount=amount, refund_no_prefix="BWR",
                                  notify_url=d.get("notify_url"))
        if isinstance(got, str):
            code, message = _REFUND_ERRORS[got]
            return 200, {"out_trade_no": order.out_trade_no, "out_refund_no": rno, "amount": amount,
                         "status": "FAILED", "error_code": code, "error_message": message}
        return 200, refund_obj(order, got)

    async def refund_query(d: dict[str, Any]) -> Answer:
        found = walletkit.find_refund(state, str(d.get("out_refund_no", "")))
        if found is None:
            return _error(404, tf.REFUND_NOT_FOUND, "no such refund")
        return 200, refund_obj(*found)

    async def statement(request: web.Request) -> web.Response:
        d, refusal = await authenticate(request)
        if refusal is not None:
            return refusal
        rows = []
        for kind, order, r in state.statement_rows(str(d.get("date"))):  # type: ignore[union-attr]
            if r is None:
                rows.append(("payment", tf.rfc3339(order.paid_at) if order.paid_at else "", order.channel_trade_no,
                             order.out_trade_no, "", "", order.amount,
                             "REVERSED" if order.state is OrderState.REVOKED else "SUCCESS"))
            else:
                rows.append(("refund", tf.rfc3339(r.created_at), order.channel_trade_no, order.out_trade_no,
                             r.channel_refund_no, r.out_refund_no, r.amount, r.status))
        return signed(200, tf.statement_csv(rows).encode(), "text/csv")

    def notify(order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        holder = refund.extra if refund else order.extra
        note: dict[str, Any] = {"event": "refund" if refund else "payment",
                                "notify_id": holder.setdefault("notify_id", "N" + secrets.token_hex(12)),
                                "payment": payment_obj(order)}
        url = order.notify_url or ""
        if refund:
            note["refund"] = refund_obj(order, refund)
            url = refund.extra.get("notify_url") or url
        body = tf.encode(note)
        return url, tf.signed_headers(key, str(int(time.time())), secrets.token_hex(16), body,
                                      "application/json"), body

    # -- profit sharing and payouts --------------------------------------------------
    book = app[BOOK_KEY] = ShareBook(max_share_percent=100)

    def split_obj(sp: SimShare) -> dict[str, Any]:
        status = "FAILED" if sp.lines and all(x["result"] == "FAILED" for x in sp.lines) else "SUCCESS"
        return {"out_split_no": sp.out_order_no, "split_no": sp.order_id, "out_trade_no": sp.order.out_trade_no,
                "status": status, "receivers": [{"account": x["account"], "amount": x["amount"], "status": x["result"]}
                                                for x in sp.lines]}

    def split_declined(d: dict[str, Any], code: str, message: str) -> Answer:
        return 200, {"out_split_no": d.get("out_split_no"), "status": "FAILED", "receivers": [], "error_code": code,
                     "error_message": message}

    async def bind(d: dict[str, Any]) -> Answer:
        account = d.get("account")
        if not isinstance(account, str) or not account:
            return _error(400, "INVALID_REQUEST", "account is required")
        if "invalid" in account:
            return _error(404, "ACCOUNT_NOT_FOUND", "no such wallet account")
        book.receivers.add(("account", account))
        return 200, {"account": account, "status": "BOUND"}

    async def split(d: dict[str, Any]) -> Answer:
        no, raw = d.get("out_split_no"), d.get("receivers")
        if not isinstance(no, str) or not no or not isinstance(raw, list):
            return _error(400, "INVALID_REQUEST", "out_split_no and receivers are required")
        if no in book.shares:
            return 200, split_obj(book.shares[no])
        order = find(d)
        if order is None:
            return _error(404, tf.ORDER_NOT_FOUND, "no such payment")
        if order.state not in (OrderState.SUCCESS, OrderState.REFUND):
            return split_declined(d, "ORDER_NOT_PAID", "the payment holds no money")
        if book.finished(order):
            return split_declined(d, "SPLIT_FINISHED", "sharing of this payment is finished")
        lines = []
        for r in raw:
            amount = r.get("amount") if isinstance(r, dict) else None
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                return _error(400, "INVALID_REQUEST", "each receiver needs an amount")
            if ("account", str(r.get("account"))) not in book.receivers:
                return split_declined(d, "RECEIVER_NOT_BOUND", f"{r.get('account')} is not a bound receiver")
            lines.append({"type": "account", "account": str(r["account"]), "amount": amount,
                          "description": str(r.get("description") or ""), "result": "SUCCESS", "fail_reason": None})
        if sum(x["amount"] for x in lines) > book.shareable(order):
            return split_declined(d, "INSUFFICIENT_SHAREABLE", "more than what is left to share")
        sp = book.shares[no] = SimShare(out_order_no=no, order=order, order_id=state.new_trade_no("BWS"), lines=lines,
                                        unfreeze=not lines, finishes=bool(d.get("finish")), state="FINISHED")
        if book.system_error_line(lines):
            return _error(500, tf.SYSTEM_ERROR, "system error, query the split")
        return 200, split_obj(sp)

    async def split_query(d: dict[str, Any]) -> Answer:
        sp = book.shares.get(str(d.get("out_split_no", "")))
        if sp is None:
            return _error(404, tf.SPLIT_NOT_FOUND, "no such split")
        return 200, split_obj(sp)

    def payout_obj(t: SimTransfer) -> dict[str, Any]:
        d: dict[str, Any] = {"merchant_id": settings.mch_id, "out_payout_no": t.out_no, "payout_no": t.bill_no,
                             "amount": t.amount, "account": t.account, "status": t.state}
        if t.fail_reason:
            d.update(error_code=t.fail_reason, error_message="the payout was refused")
        return d

    def payout_notice(t: SimTransfer) -> tuple[str, dict[str, str], bytes]:
        body = tf.encode({"event": "payout", "notify_id": t.extra.setdefault("notify_id", "N" + secrets.token_hex(12)),
                          "payout": payout_obj(t)})
        return str(t.notify_url), tf.signed_headers(key, str(int(time.time())), secrets.token_hex(16), body,
                                                    "application/json"), body

    async def payout(d: dict[str, Any]) -> Answer:
        book.transfer_calls += 1
        no, amount, account = d.get("out_payout_no"), d.get("amount"), d.get("account")
        if (not isinstance(no, str) or not no or not isinstance(account, str) or not account
                or not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
            return _error(400, "INVALID_REQUEST", "out_payout_no, amount and account are required")
        if no in book.transfers:
            return 200, payout_obj(book.transfers[no])
        t = SimTransfer(out_no=no, amount=amount, account=account, bill_no=state.new_trade_no("BWP"),
                        name=d.get("name"), notify_url=d.get("notify_url") or None)
        sc = Scenario.for_amount(amount)
        if sc is Scenario.DECLINED:
            t.extra["ends"] = ("FAILED", "INSUFFICIENT_BALANCE")
        elif "frozen" in account:
            t.extra["ends"] = ("FAILED", "ACCOUNT_FROZEN")
        elif t.name == "不符":
            t.extra["ends"] = ("FAILED", "NAME_MISMATCH")
        else:
            t.extra["ends"] = ("FAILED", "ACCOUNT_ABNORMAL") if sc is Scenario.SYSTEM_ERROR_THEN_FAILED \
                else ("SUCCESS", None)
        book.complete(t)
        book.transfers[no] = t
        if t.notify_url and book.notify_transfers:
            state.spawn(state.deliver(lambda: payout_notice(t), no))
        await slow_if(sc, settings)
        if sc in (Scenario.SYSTEM_ERROR, Scenario.SYSTEM_ERROR_THEN_FAILED):
            return _error(500, tf.SYSTEM_ERROR, "system error, query the payout")
        return 200, payout_obj(t)

    async def payout_query(d: dict[str, Any]) -> Answer:
        t = book.transfers.get(str(d.get("out_payout_no", "")))
        if t is None:
            return _error(404, tf.PAYOUT_NOT_FOUND, "no such payout")
        t.queries += 1
        return 200, payout_obj(t)

    state.notify_builder = notify
    state.refund_notify_builder = notify
    for call, handler in (("pay", pay), ("query", query), ("reverse", reverse), ("close", close),
                          ("refund", refund), ("refund_query", refund_query), ("receiver_bind", bind),
                          ("split", split), ("split_query", split_query), ("payout", payout),
                          ("payout_query", payout_query)):
        app.router.add_post(tf.PATHS[call], endpoint(handler))
    app.router.add_post(tf.PATHS["statement"], statement)
    return app
