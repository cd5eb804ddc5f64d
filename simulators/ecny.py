"""e-CNY acquirer-gateway simulator (the acquirer profile of
:mod:`channels.ecny.transformers`; not a PBOC system).

Verifies every request's ``Authorization`` (merchant appid and certificate
serial, SHA256withRSA with paycore's public key, ±300 s timestamp, no nonce
reuse) and refuses a failure with 401 code ``000002``; signs every answer,
notification and bill with the acquirer's key. The amount's last two digits
choose the behaviour (:class:`simulators.kit.Scenario`).
"""
from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from channels import money
from simulators import kit as simkit, walletkit
from channels.ecny import transformers as tf
from channels.ecny.adapter import load_private_key, load_public_key
from simulators.kit import OrderState, SimOrder, SimRefund, SimSettings, base_app, slow_if

Answer = tuple[str, dict[str, Any]]

STATE_WORDS = {
    OrderState.NOTPAY: "WAIT_PAY", OrderState.USERPAYING: "PAYING", OrderState.SUCCESS: "SUCCESS",
    OrderState.PAYERROR: "FAIL", OrderState.CLOSED: "CLOSED", OrderState.REVOKED: "REVOKED",
    OrderState.REFUND: "REFUND",
}
DECLINE = "200001"          # wallet balance not enough
BAD_CODE = "200002"         # payment code invalid or expired
_REFUND_CODES = {walletkit.REFUND_DECLINED: "300001", walletkit.REFUND_EXCEEDS: "300002",
                 walletkit.REFUND_NOT_PAID: "300003"}
ECNY_CODE = re.compile(r"01\d{17}")


def trade_obj(order: SimOrder) -> dict[str, Any]:
    d: dict[str, Any] = {"merchant_no": order.mch_id, "out_trade_no": order.out_trade_no,
                         "trade_no": order.channel_trade_no,
                         "total_amount": money.fen_to_yuan(simkit.stated_amount(order)),
                         "trade_state": STATE_WORDS[order.state]}
    if order.paid_at:
        d["pay_time"] = tf.ecny_time(order.paid_at)
    if order.qr_code:
        d["code_url"] = order.qr_code
    if order.state is OrderState.PAYERROR:
        d.update(fail_code=DECLINE, fail_msg=tf.CODES[DECLINE])
    return d


def refund_obj(refund: SimRefund) -> dict[str, Any]:
    return {"out_refund_no": refund.out_refund_no, "refund_no": refund.channel_refund_no,
            "refund_amount": money.fen_to_yuan(refund.amount), "refund_state": refund.status}


def create_app(settings: SimSettings) -> web.Application:
    app, state = base_app(settings)
    key = load_private_key(settings.provider_private_key_file)
    paycore_key = load_public_key(settings.paycore_public_key_file)
    appid, serial = settings.app_id, settings.provider_serial_no
    nonces = walletkit.NonceBook(tf.REPLAY_WINDOW)
    qr_base = str(settings.extra.get("qr_base", "https://ecny.acquirer.example/qr/"))

    def respond(code: str, data: dict[str, Any] | None = None, status: int = 200) -> web.Response:
        body = orjson.dumps({"code": code, "msg": tf.CODES.get(code, ""),
                             "resp_time": tf.ecny_time(datetime.now(timezone.utc)), "resp_data": data or {}})
        headers = tf.answer_headers(key, appid, serial, str(int(time.time())), secrets.token_hex(16), body)
        headers["Content-Type"] = "application/json"
        return web.Response(status=status, body=body, headers=headers)

    async def authenticate(request: web.Request) -> dict[str, Any] | web.Response:
        body = await request.read()
        auth = tf.parse_authorization(request.headers.get("Authorization"))
        now = time.time()
        if (auth is None or auth["appid"] != appid or auth["serial_no"] != settings.serial_no
                or not tf.verify_authorization(paycore_key, auth, body)
                or not tf.fresh(auth["timestamp"], now) or not nonces.add(auth["nonce_str"], now)):
            return respond(tf.SIGN_ERROR, status=401)
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError:
            envelope = None
        data = envelope.get("req_data") if isinstance(envelope, dict) else None
        if not isinstance(data, dict) or data.get("merchant_no") != settings.mch_id:
            return respond(tf.PARAM_ERROR, status=400)
        return data

    def endpoint(handler: Callable[[dict[str, Any]], Awaitable[Answer]]):
        async def serve(request: web.Request) -> web.Response:
            got = await authenticate(request)
            if isinstance(got, web.Response):
                return got
            return respond(*await handler(got))
        return serve

    def find(d: dict[str, Any]) -> SimOrder | None:
        return state.get(d.get("out_trade_no"), d.get("trade_no"))

    def amount_of(value: Any) -> int | None:
        try:
            return money.yuan_to_fen(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def open_pay(d: dict[str, Any], method: str) -> tuple[SimOrder, bool] | None:
        amount, no = amount_of(d.get("total_amount")), d.get("out_trade_no")
        if not amount or not isinstance(no, str) or not no:
            return None
        qr = f"{qr_base}{secrets.token_urlsafe(12)}" if method == "qr" else None
        return walletkit.open_order(state, out_trade_no=no, amount=amount, method=method,
                                 notify_url=d.get("notify_url"), mch_id=settings.mch_id, trade_no_prefix="EC",
                                 auth_code=d.get("auth_code"), qr_code=qr)

    async def micropay(d: dict[str, Any]) -> Answer:
        if not ECNY_CODE.fullmatch(str(d.get("auth_code", ""))):
            return BAD_CODE, {"out_trade_no": d.get("out_trade_no")}
        opened = open_pay(d, "barcode")
        if opened is None:
            return tf.PARAM_ERROR, {}
        order, created = opened
        if created:
            await walletkit.settle_barcode(state, settings, order)
            if walletkit.answers_system_error(order, created):
                return tf.SYSTEM_BUSY, {}
        return (DECLINE if order.state is OrderState.PAYERROR else tf.OK), trade_obj(order)

    async def preorder(d: dict[str, Any]) -> Answer:
        opened = open_pay(d, "qr")
        if opened is None:
            return tf.PARAM_ERROR, {}
        order, created = opened
        if created:
            await slow_if(order, settings)
        return tf.OK, trade_obj(order)

    async def query(d: dict[str, Any]) -> Answer:
        order = walletkit.seen(state, find(d))
        if order is None:
            return tf.ORDER_NOT_EXIST, {}
        return tf.OK, trade_obj(state.on_query(order))

    async def close(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return tf.ORDER_NOT_EXIST, {}
        walletkit.close_order(order)         # a paid order stays paid: the answer says so
        return tf.OK, trade_obj(order)

    async def revoke(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return tf.ORDER_NOT_EXIST, {}
        if not walletkit.reverse_order(order):
            return tf.ORDER_STATE_ERROR, trade_obj(order)
        return tf.OK, trade_obj(order)

    async def refund(d: dict[str, Any]) -> Answer:
        order = find(d)
        if order is None:
            return tf.ORDER_NOT_EXIST, {}
        amount, rno = amount_of(d.get("refund_amount")), d.get("out_refund_no")
        if amount is None or not isinstance(rno, str) or not rno:
            return tf.PARAM_ERROR, {}
        got = walletkit.refund_order(state, order, out_refund_no=rno, amount=amount, refund_no_prefix="ECR",
                                  notify_url=d.get("notify_url"))
        if isinstance(got, str):
            return _REFUND_CODES[got], {"out_refund_no": rno}
        if walletkit.answer_lost(got):
            return tf.SYSTEM_BUSY, {}
        return tf.OK, refund_obj(got)

    async def refund_query(d: dict[str, Any]) -> Answer:
        found = walletkit.find_refund(state, str(d.get("out_refund_no", "")))
        if found is None:
            return tf.REFUND_NOT_EXIST, {}
        return tf.OK, {"out_trade_no": found[0].out_trade_no, **refund_obj(found[1])}

    async def bill(d: dict[str, Any]) -> Answer:
        try:
            day = datetime.strptime(str(d.get("bill_date")), "%Y%m%d").date().isoformat()
        except ValueError:
            return tf.PARAM_ERROR, {}
        rows = []
        for _, order, r in state.statement_rows(day):
            if r is None:
                rows.append(("PAY", tf.ecny_time(order.paid_at) if order.paid_at else "", order.channel_trade_no,
                             order.out_trade_no, "", "", order.amount, STATE_WORDS[order.state]))
            else:
                rows.append(("REFUND", tf.ecny_time(r.created_at), order.channel_trade_no, order.out_trade_no,
                             r.channel_refund_no, r.out_refund_no, r.amount, r.status))
        return tf.OK, {"bill_date": d["bill_date"], "content": tf.bill_content(rows)}

    def notify(order: SimOrder, refund: SimRefund | None) -> tuple[str, dict[str, str], bytes]:
        holder = refund.extra if refund else order.extra
        note = {"notify_id": holder.setdefault("notify_id", "EN" + secrets.token_hex(12)),
                "notify_type": "refund" if refund else "trade", **trade_obj(order)}
        url = order.notify_url or ""
        if refund:
            note.update(refund_obj(refund))
            url = refund.extra.get("notify_url") or url
        body = orjson.dumps(note)
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        sig = tf.rsa_sign(key, tf.message(appid, serial, ts, nonce, body))
        return url, {"Content-Type": "application/json",
                     "Authorization": tf.authorization(appid, serial, ts, nonce, sig)}, body

    state.notify_builder = notify
    state.refund_notify_builder = notify
    for verb, handler in (("micropay", micropay), ("preorder", preorder), ("query", query), ("close", close),
                          ("revoke", revoke), ("refund", refund), ("refund_query", refund_query), ("bill", bill)):
        app.router.add_post(tf.PATHS[verb], endpoint(handler))
    return app
