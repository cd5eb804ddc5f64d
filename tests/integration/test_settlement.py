"""Fees and settlement through the public API and the operators' CLI, against the real stack: a
merchant's fee rule prices its payments when they succeed, the settlement consumer builds its
business day from Kafka, closing the day freezes the statement (CSV parsed back, digest checked,
settlement.closed webhook signed), a late refund adjusts the next day and leaves the closed file
byte-identical, a rule change prices later payments only, and the statements equal the journal."""
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import secrets
import signal
from datetime import date, datetime, timedelta

import orjson
import pytest

from paycore.bizday import Calendar
from paycore.config import SettlementConfig
from paycore.ops.webhooks import verify_signature
from paycore.outbox.settlement import SettlementMetrics, apply
from paycore.outbox import statements
from paycore.outbox.statements import CSV_COLUMNS
from tests.integration.test_consumer import consumer, stop
from tests.support.chaoskit import run_audit
from tests.support.helpers import auth_code
from tests.support.ops import eventually, paycore_cli

CAL = Calendar.of("Asia/Shanghai")


class Merchant:
    def __init__(self, stack, mid: str, secret: str) -> None:
        self.stack, self.id, self.secret = stack, mid, secret

    async def api(self, method: str, path: str, body=None):
        return await self.stack.api(method, path, body, merchant=self.id, secret=self.secret)

    async def pay(self, channel: str, amount: int) -> dict:
        r = await self.api("POST", "/v1/payments", {
            "merchant_order_no": "s" + secrets.token_hex(8), "amount": amount, "currency": "CNY",
            "method": "barcode", "auth_code": auth_code(channel), "subject": "settlement"})
        assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
        return r.body

    async def refund(self, payment_id: str, amount: int) -> dict:
        r = await self.api("POST", f"/v1/payments/{payment_id}/refunds",
                           {"refund_no": "r" + secrets.token_hex(6), "amount": amount})
        assert r.status == 201, r.body
        for _ in range(100):
            got = await self.api("GET", f"/v1/refunds/{r.body['id']}")
            if got.body["status"] != "PROCESSING":
                break
            await asyncio.sleep(0.1)
        assert got.body["status"] == "SUCCEEDED", got.body
        return got.body

    async def day(self, day: date) -> dict:
        r = await self.api("GET", f"/v1/settlements?date={day.isoformat()}")
        assert r.status == 200, r.body
        return r.body

    async def lines(self, day: date) -> list[dict]:
        out, cursor = [], None
        while True:
            path = f"/v1/settlements/{day.isoformat()}/lines" + (f"?cursor={cursor}" if cursor else "")
            r = await self.api("GET", path)
            assert r.status == 200, r.body
            out += r.body["lines"]
            cursor = r.body["next_cursor"]
            if cursor is None:
                return out


async def new_merchant(stack) -> Merchant:
    mid = "m_stl_" + secrets.token_hex(4)
    res = await paycore_cli(stack, "merchant", "add", mid, "--name", "Settlement test")
    assert res.rc == 0, res.err
    return Merchant(stack, mid, json.loads(res.out)["secret"])


async def fee_rule(stack, mid: str, *args: str) -> dict:
    res = await paycore_cli(stack, "fee", "add", mid, *args)
    assert res.rc == 0, res.err
    rule = json.loads(res.out)
    # the rule counts from its effective_from (fee_rule_lead = 1 s in the test stack): wait until then
    start = datetime.fromisoformat(rule["effective_from"])
    await asyncio.sleep(max((start - datetime.now(start.tzinfo)).total_seconds(), 0) + 0.2)
    return rule


@pytest.fixture
async def settling(stack):
    proc = await consumer(stack, "stl-" + secrets.token_hex(3))
    try:
        yield proc
    finally:
        await stop(proc, signal.SIGKILL)


async def settled(m: Merchant, path: str) -> dict:
    async def final():
        r = await m.api("GET", path)
        assert r.status == 200, r.body
        return r.body if r.body["status"] != "PROCESSING" else None
    return await eventually(final, timeout=30, what=f"{path} final")


async def test_shares_and_payouts_are_lines_of_the_day_once(stack, settling):
    """A split and a payout leave the merchant's money: lines of kind split and payout on the day's
    statement (API, CSV), counted in shares/payouts and the net; a redelivered event adds nothing.
    (First in this file: the next test closes today.)"""
    m = await new_merchant(stack)
    rcv = await m.api("POST", "/v1/receivers", {"receiver_no": "rcv" + secrets.token_hex(4), "channel": "wechatpay",
                                                "type": "openid", "account": "o" + secrets.token_hex(12)})
    assert rcv.status == 201, rcv.body
    r = await m.api("POST", "/v1/payments", {
        "merchant_order_no": "s" + secrets.token_hex(8), "amount": 10000, "currency": "CNY", "method": "qr",
        "channel": "wechatpay", "subject": "shared", "profit_sharing": True})
    assert r.status == 201, r.body
    await stack.customer_pays("wechatpay", out_trade_no=r.body["id"])
    p = await eventually(lambda: _paid(m, r.body["id"]), timeout=30, what="the payment to succeed")
    s = await m.api("POST", f"/v1/payments/{p['id']}/splits", {"split_no": "s" + secrets.token_hex(4), "finish": False,
                    "receivers": [{"receiver_id": rcv.body["id"], "amount": 2500, "description": "平台佣金"}]})
    assert s.status == 201, s.body
    assert (await settled(m, f"/v1/splits/{s.body['id']}"))["status"] == "SUCCEEDED"
    po = await m.api("POST", "/v1/payouts", {
        "payout_no": "po" + secrets.token_hex(4), "amount": 3000, "currency": "CNY", "channel": "wechatpay",
        "destination": {"type": "openid", "value": "o" + secrets.token_hex(12), "name": "张三丰"}})
    assert po.status == 201, po.body
    assert (await settled(m, f"/v1/payouts/{po.body['id']}"))["status"] == "SUCCEEDED"

    moved = {e["type"]: e for e in await stack.events(p["id"]) + await stack.events(po.body["id"])}
    days = {CAL.day_of(datetime.fromisoformat(moved[t]["occurred_at"].replace("Z", "+00:00")))
            for t in ("payment.succeeded", "split.succeeded", "payout.succeeded")}

    async def counted():
        got = [ln for d in sorted(days) for ln in await m.lines(d)]
        return got if len(got) == 3 else None
    lines = await eventually(counted, timeout=60, what="the consumer to settle the payment, split and payout")
    assert {(ln["kind"], ln["id"], ln["channel"], ln["amount"], ln["fee"], ln["net"]) for ln in lines} == {
        ("payment", p["id"], "wechatpay", 10000, 0, 10000), ("split", s.body["id"], "wechatpay", -2500, 0, -2500),
        ("payout", po.body["id"], "wechatpay", -3000, 0, -3000)}
    totals = [await m.day(d) for d in sorted(days)]
    assert [sum(t[k] for t in totals) for k in ("count", "gross", "refunds", "fees", "shares", "payouts", "net")] \
        == [3, 10000, 0, 0, 2500, 3000, 10000 - 2500 - 3000]
    for t in totals:
        assert t["net"] == t["gross"] - t["refunds"] - t["fees"] - t["shares"] - t["payouts"] + t["adjustments"]
        assert [(c["shares"], c["payouts"], c["net"]) for c in t["by_channel"]] == [(t["shares"], t["payouts"],
                                                                                     t["net"])]
    rows = []
    for d in sorted(days):
        f = await m.api("GET", f"/v1/settlements/{d.isoformat()}.csv")
        assert f.status == 200 and f.headers["X-Paycore-Statement"] == "provisional"
        got = list(csv.DictReader(io.StringIO(f.body.decode("utf-8-sig"), newline="")))
        assert got[-1]["kind"] == "total"
        rows += got[:-1]
    assert sorted((x["kind"], x["id"], x["payment_id"], x["merchant_order_no"], int(x["amount"]), int(x["net"]))
                  for x in rows) == sorted([
        ("payment", p["id"], p["id"], p["merchant_order_no"], 10000, 10000),
        ("payout", po.body["id"], po.body["id"], po.body["payout_no"], -3000, -3000),
        ("split", s.body["id"], p["id"], p["merchant_order_no"], -2500, -2500)])

    # the journal check counts shares and payouts too: the statements agree with the journal on every day
    # the money moved, and a split line gone missing is told (looked at inside a transaction rolled back)
    for d in sorted(days):
        async def agrees(d=d):
            res = await paycore_cli(stack, "settlement", "check", "--date", d.isoformat())
            return res if res.rc == 0 else None
        await eventually(agrees, timeout=60, interval=1, what=f"settlement check of {d} to agree")
    split_day = CAL.day_of(datetime.fromisoformat(moved["split.succeeded"]["occurred_at"].replace("Z", "+00:00")))
    async with stack.pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            assert (m.id, "wechatpay") not in await statements.check(conn, split_day, CAL)
            await conn.execute("delete from settlement_lines where id = $1", s.body["id"])
            journal, stated = (await statements.check(conn, split_day, CAL))[(m.id, "wechatpay")]
            shares = statements.CHECK_FIELDS.index("shares")
            assert journal[shares] == 2500 and stated[shares] == 0
        finally:
            await tr.rollback()

    # Kafka delivers at least once: the same events again change nothing
    again = [orjson.dumps(moved[t]) for t in ("split.succeeded", "payout.succeeded")]
    assert await apply(stack.pool, again, SettlementMetrics(), CAL, SettlementConfig()) == (0, 2)
    assert [await m.day(d) for d in sorted(days)] == totals
    assert len([ln for d in sorted(days) for ln in await m.lines(d)]) == 3


async def _paid(m: Merchant, payment_id: str) -> dict | None:
    r = await m.api("GET", f"/v1/payments/{payment_id}")
    return r.body if r.body["status"] == "SUCCEEDED" else None


async def test_fees_statements_close_and_late_adjustment(stack, settling, receiver):
    m = await new_merchant(stack)
    assert (await paycore_cli(stack, "settlement", "webhook", m.id, receiver.url("stl"))).rc == 0
    refused = await paycore_cli(stack, "fee", "add", m.id, "--rate", "0.38%", "--from", "2020-01-01")
    assert refused.rc == 2 and "no sooner than" in refused.err            # history is never rewritten
    await fee_rule(stack, m.id, "--channel", "alipay", "--rate", "0.38%", "--min", "1")
    await fee_rule(stack, m.id, "--rate", "0.6%", "--fixed", "5", "--max", "100")   # every other channel

    a = await m.pay("alipay", 12300)      # 46.74 fen -> 47
    b = await m.pay("alipay", 100)        # 0.38 fen -> 0, minimum 1
    w = await m.pay("wechatpay", 50000)   # 300 fen + 5 -> 305, capped at 100
    assert (a["fee"], b["fee"], w["fee"]) == (47, 1, 100)
    r1 = await m.refund(a["id"], 4000)    # returns half_up(47 * 4000 / 12300) = 15 of the fee
    day = CAL.day_of(datetime.fromisoformat(a["paid_at"].replace("Z", "+00:00")))

    async def counted():
        d = await m.day(day)
        return d if d["count"] == 4 else None
    d = await eventually(counted, timeout=60, what="the consumer to settle four lines")
    assert d["status"] == "OPEN" and d["file_sha256"] is None
    assert (d["gross"], d["refunds"], d["fees"], d["adjustments"]) == (62400, 4000, 47 + 1 + 100 - 15, 0)
    assert d["net"] == 62400 - 4000 - 133
    assert {c["channel"]: (c["count"], c["net"]) for c in d["by_channel"]} == {
        "alipay": (3, 12300 + 100 - 4000 - 47 - 1 + 15), "wechatpay": (1, 50000 - 100)}
    lines = await m.lines(day)
    assert {(ln["kind"], ln["id"], ln["amount"], ln["fee"]) for ln in lines} == {
        ("payment", a["id"], 12300, 47), ("payment", b["id"], 100, 1), ("payment", w["id"], 50000, 100),
        ("refund", r1["id"], -4000, -15)}

    # closing: the statement is frozen, its digest published, the merchant told (signed)
    closed = await paycore_cli(stack, "settlement", "close", "--date", day.isoformat(), "--early")
    assert closed.rc == 0, closed.err
    assert (await paycore_cli(stack, "settlement", "close", "--date", day.isoformat(), "--early")).rc == 0
    d = await m.day(day)
    assert d["status"] == "CLOSED" and d["net"] == 62400 - 4000 - 133
    f = await m.api("GET", f"/v1/settlements/{day.isoformat()}.csv")
    assert f.status == 200 and f.headers["X-Paycore-Statement"] == "final"
    data = f.body if isinstance(f.body, bytes) else None
    assert data is not None and data.startswith(b"\xef\xbb\xbf")
    assert hashlib.sha256(data).hexdigest() == d["file_sha256"] == f.headers["X-Paycore-File-SHA256"]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[-1]["kind"] == "total" and rows[-1]["id"] == "4"
    assert sorted((r["kind"], r["id"], int(r["amount"]), int(r["fee"]), int(r["net"])) for r in rows[:-1]) == sorted(
        (ln["kind"], ln["id"], ln["amount"], ln["fee"], ln["net"]) for ln in lines)
    assert int(rows[-1]["net"]) == d["net"]

    hooks = await eventually(lambda: receiver.received("stl"), timeout=30, what="the settlement.closed webhook")
    hook = hooks[0]
    assert verify_signature(m.secret.encode(), hook.body, hook.headers["X-Paycore-Signature"])
    ev = orjson.loads(hook.body)
    assert ev["type"] == "settlement.closed" and ev["settlement"] == d

    # a refund after the close: an adjustment of the next open day; the closed file does not change
    r2 = await m.refund(a["id"], 1000)
    nxt = day + timedelta(days=1)

    async def adjusted():
        return [ln for ln in await m.lines(nxt) if ln["id"] == r2["id"]]
    (adj,) = await eventually(adjusted, timeout=60, what="the late refund on the next day")
    # 47 * 5000 / 12300 = 19.1 -> 19 returned in all, 15 of it already: 4 now
    assert (adj["kind"], adj["original_date"], adj["amount"], adj["fee"], adj["net"]) == (
        "adjustment", day.isoformat(), -1000, -4, -996)
    assert (await m.day(nxt))["adjustments"] == -996
    again = await m.api("GET", f"/v1/settlements/{day.isoformat()}.csv")
    assert again.body == data
    assert (await m.day(day)) == d

    # a later rule prices later payments only
    await fee_rule(stack, m.id, "--channel", "alipay", "--rate", "1%")
    c = await m.pay("alipay", 12300)
    assert c["fee"] == 123
    assert (await m.api("GET", f"/v1/payments/{a['id']}")).body["fee"] == 47
    listed = await paycore_cli(stack, "fee", "list", m.id, "--json")
    assert [json.loads(x)["rate"] for x in listed.out.splitlines()] == ["0.6%", "0.38%", "1%"]

    # the statements add up to the journal (every merchant's, once the consumer has caught up with the
    # session's events), and the operator's view shows each channel's reconciliation beside the day
    async def agrees():
        res = await paycore_cli(stack, "settlement", "check", "--date", day.isoformat())
        return res if res.rc == 0 else None
    check = await eventually(agrees, timeout=60, interval=1, what="settlement check to agree with the journal")
    assert json.loads(check.out)["journal_check"] == "agrees"
    show = await paycore_cli(stack, "settlement", "show", "--date", day.isoformat(), "--json")
    view = json.loads(show.out)
    mine = next(x for x in view["merchants"] if x["merchant_id"] == m.id)
    assert view["closed"] and mine == d
    for ch in ("alipay", "wechatpay"):
        assert (ch in view["flagged_channels"]) == (view["reconciliation"][ch] != "clean")
    out = stack.var / f"export-{m.id}"
    exp = await paycore_cli(stack, "settlement", "export", "--date", day.isoformat(), "--merchant", m.id,
                            "--out", str(out))
    assert json.loads(exp.out)["sha256"] == d["file_sha256"]
    assert (out / f"{m.id}_{day.isoformat()}.csv").read_bytes() == data

    # the settlement.closed event reached Kafka once, under its settlement's key, like every event
    report = await run_audit(stack)
    assert report["ok"], report


async def test_bad_settlement_requests_are_400(stack):
    for path, field in (("/v1/settlements", "date"), ("/v1/settlements?date=2025-02-30", "date"),
                        ("/v1/settlements?date=20250201", "date"), ("/v1/settlements/2025-13-01/lines", "date"),
                        ("/v1/settlements/2025-02-01/lines?cursor=nope", "cursor"),
                        ("/v1/settlements/yesterday.csv", "date")):
        r = await stack.api("GET", path)
        assert r.status == 400 and r.body["error"]["field"] == field, (path, r.body)


async def test_days_across_beijing_midnight_and_events_for_a_closed_day(stack):
    """The consumer's batch against the real database: an event at 23:59:59 Beijing time and one at
    00:00:00 fall on two days; once the first day is closed, a further event of it is the next open
    day's adjustment (days long past, so no other test's day is touched)."""
    mid = "m_midnight_" + secrets.token_hex(3)
    settings = SettlementConfig()

    def ev(n: int, at: str, etype: str = "payment.succeeded") -> bytes:
        return orjson.dumps({"event_id": f"evt_midnight{mid}{n}", "type": etype, "occurred_at": at,
                             "payment": {"id": f"pay_{mid}{n}", "merchant_id": mid, "merchant_order_no": f"o{n}",
                                         "channel": "alipay", "method": "qr", "amount": 1000, "fee": 4,
                                         "paid_at": at, "refunded_amount": 0}})

    before, after = ev(1, "2001-01-31T15:59:59.999999Z"), ev(2, "2001-01-31T16:00:00Z")
    assert await apply(stack.pool, [before, after, before], SettlementMetrics(), CAL, settings) == (2, 1)
    rows = await stack.pool.fetch("select id, day, kind from settlement_lines where merchant_id = $1 order by id",
                                  mid)
    assert [(r["day"], r["kind"]) for r in rows] == [(date(2001, 1, 31), "payment"), (date(2001, 2, 1), "payment")]

    for d in ("2001-01-31", "2001-02-01"):
        res = await paycore_cli(stack, "settlement", "close", "--date", d)
        assert res.rc == 0 and json.loads(res.out)["already_closed"] is False, res.err
    late = ev(3, "2001-01-31T15:00:00Z")
    assert await apply(stack.pool, [late], SettlementMetrics(), CAL, settings) == (1, 0)
    r = await stack.pool.fetchrow("select day, kind, original_date from settlement_lines where id = $1",
                                  f"pay_{mid}3")
    assert (r["day"], r["kind"], r["original_date"]) == (date(2001, 2, 2), "adjustment", date(2001, 1, 31))
