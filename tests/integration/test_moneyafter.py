"""Money after the payment through the public API against the WeChat Pay simulator:
receivers, splits (分账) with release and return before a refund, payouts (商家转账)
with failures and an unknown outcome finished by recovery after a SIGKILL. Every
test ends with ``paycore audit`` clean."""
from __future__ import annotations

import asyncio
import json
import secrets

import pytest

from simulators.sharekit import BOOK_KEY
from tests.support.chaoskit import metric, metrics_text, run_audit
from tests.support.ops import eventually, paycore_cli

CH = "wechatpay"
MERCHANT_NAME = "示例科技有限公司"
PAYEE = "张三丰"


@pytest.fixture(autouse=True)
async def audit_after(stack):
    yield
    report = await run_audit(stack, wait=30)
    assert report["ok"], report


def book(stack, channel: str = CH):
    return stack.sims.apps[channel][BOOK_KEY]


def no(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def receiver(stack, rtype: str = "merchant", account: str | None = None, channel: str = CH) -> dict:
    body = {"receiver_no": no("rcv"), "channel": channel, "type": rtype,
            "account": account or ("19" + str(secrets.randbelow(10 ** 8)).zfill(8) if rtype == "merchant"
                                   else "o" + secrets.token_hex(12))}
    if rtype in ("merchant", "account"):
        body["name"] = MERCHANT_NAME
    r = await stack.api("POST", "/v1/receivers", body)
    assert r.status == 201, r.body
    again = await stack.api("POST", "/v1/receivers", body)
    assert again.status == 200 and again.body["id"] == r.body["id"]
    assert r.body["status"] == "ACTIVE" and r.body["name"] in (None, MERCHANT_NAME[0] + "*" * 7)
    return r.body


async def shared_payment(stack, amount: int = 10000, channel: str = CH) -> dict:
    r = await stack.pay(amount=amount, method="qr", channel=channel, profit_sharing=True)
    assert r.status == 201, r.body
    await stack.customer_pays(channel, out_trade_no=r.body["id"])
    p = await stack.wait_final(r.body["id"])
    assert p["status"] == "SUCCEEDED"
    return p


async def split_final(stack, split_id: str) -> dict:
    async def final():
        r = await stack.api("GET", f"/v1/splits/{split_id}")
        return r.body if r.body["status"] != "PROCESSING" else None
    return await eventually(final, timeout=30, what="split final")


async def test_split_then_release_is_journaled_on_the_payment(stack):
    rm, ro = await receiver(stack), await receiver(stack, "openid")
    p = await shared_payment(stack)
    body = {"split_no": no("s"), "finish": False, "receivers": [
        {"receiver_id": rm["id"], "amount": 2000, "description": "平台佣金"},
        {"receiver_id": ro["id"], "amount": 500, "description": "导购提成"}]}
    r = await stack.api("POST", f"/v1/payments/{p['id']}/splits", body)
    assert r.status == 201, r.body
    assert r.body["payment_id"] == p["id"] and r.body["split_no"] == body["split_no"]
    assert (await stack.api("POST", f"/v1/payments/{p['id']}/splits", body)).body["id"] == r.body["id"]
    changed = dict(body, receivers=body["receivers"][:1])
    assert (await stack.api("POST", f"/v1/payments/{p['id']}/splits", changed)).status == 409
    done = await split_final(stack, r.body["id"])
    assert done["status"] == "SUCCEEDED"
    assert [(x["receiver_id"], x["amount"], x["status"]) for x in done["receivers"]] == [
        (rm["id"], 2000, "SUCCEEDED"), (ro["id"], 500, "SUCCEEDED")]
    assert len([s for s in book(stack).shares.values() if s.order.channel_trade_no == p["channel_trade_no"]]) == 1

    release = await stack.api("POST", f"/v1/payments/{p['id']}/splits",
                              {"split_no": no("rel"), "finish": True, "receivers": []})
    assert release.status == 201 and release.body["status"] == "SUCCEEDED", release.body
    after = await stack.api("POST", f"/v1/payments/{p['id']}/splits", dict(body, split_no=no("s")))
    assert after.status == 409 and after.body["error"]["code"] == "INVALID_STATE"

    events = await stack.events(p["id"])
    types = [e["type"] for e in events]
    assert types[-4:] == ["split.created", "split.succeeded", "split.created", "split.succeeded"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-3]["split"]["id"] == r.body["id"] and events[-3]["payment"]["id"] == p["id"]


async def test_over_split_is_refused_and_the_channel_limit_fails_the_split(stack):
    rm = await receiver(stack)
    p = await shared_payment(stack, 10000)
    over = await stack.api("POST", f"/v1/payments/{p['id']}/splits", {
        "split_no": no("s"), "finish": False, "receivers": [{"receiver_id": rm["id"], "amount": 10001,
                                                              "description": "x"}]})
    assert over.status == 422 and over.body["error"]["code"] == "AMOUNT_LIMIT_EXCEEDED", over.body
    assert await stack.pool.fetchval("select count(*) from splits where payment_id = $1", p["id"]) == 0
    # paycore allows it (within the amount), WeChat refuses above its 30 % share limit: FAILED, nothing moved
    r = await stack.api("POST", f"/v1/payments/{p['id']}/splits", {
        "split_no": no("s"), "finish": False, "receivers": [{"receiver_id": rm["id"], "amount": 4000,
                                                              "description": "x"}]})
    assert r.status == 201 and r.body["status"] == "FAILED", r.body
    assert r.body["receivers"][0]["failure"]["channel_code"] == "NOT_ENOUGH"
    # a receiver whose relation the provider no longer has: its part is CLOSED at the channel
    book(stack).receivers.discard(("MERCHANT_ID", rm["account"]))
    r = await stack.api("POST", f"/v1/payments/{p['id']}/splits", {
        "split_no": no("s"), "finish": False, "receivers": [{"receiver_id": rm["id"], "amount": 1000,
                                                              "description": "x"}]})
    done = await split_final(stack, r.body["id"])
    assert done["status"] == "FAILED" and done["receivers"][0]["failure"]["channel_code"] == "NO_RELATION"


async def test_refund_of_a_split_payment_takes_the_shares_back_first(stack):
    rm = await receiver(stack)
    p = await shared_payment(stack, 10000)
    s = await stack.api("POST", f"/v1/payments/{p['id']}/splits", {
        "split_no": no("s"), "finish": False, "receivers": [{"receiver_id": rm["id"], "amount": 3000,
                                                              "description": "佣金"}]})
    assert (await split_final(stack, s.body["id"]))["status"] == "SUCCEEDED"
    r = await stack.api("POST", f"/v1/payments/{p['id']}/refunds", {"refund_no": no("r"), "amount": 10000})
    assert r.status == 201, r.body
    async def refunded():
        got = await stack.api("GET", f"/v1/refunds/{r.body['id']}")
        return got.body if got.body["status"] != "PROCESSING" else None
    assert (await eventually(refunded, timeout=30))["status"] == "SUCCEEDED"
    types = [e["type"] for e in await stack.events(p["id"])]
    assert types.index("split.return_created") < types.index("split.returned") < types.index("refund.succeeded")
    returns = [x for x in book(stack).returns.values() if x.share.out_order_no == s.body["id"]]
    assert [(x.amount, x.result) for x in returns] == [(3000, "SUCCESS")]


async def payout(stack, amount: int, account: str | None = None, name: str | None = PAYEE, channel: str = CH,
                 dtype: str = "openid", **extra) -> dict:
    dest = {"type": dtype, "value": account or "o" + secrets.token_hex(12)}
    if name:
        dest["name"] = name
    body = {"payout_no": no("po"), "amount": amount, "currency": "CNY", "channel": channel, "destination": dest,
            "remark": "佣金结算", **extra}
    r = await stack.api("POST", "/v1/payouts", body)
    assert r.status == 201, r.body
    again = await stack.api("POST", "/v1/payouts", body)
    assert again.status == 200 and again.body["id"] == r.body["id"]
    return dict(r.body, request=body)


async def payout_final(stack, payout_id: str, timeout: float = 30) -> dict:
    async def final():
        r = await stack.api("GET", f"/v1/payouts/{payout_id}")
        return r.body if r.body["status"] != "PROCESSING" else None
    return await eventually(final, timeout=timeout, what="payout final")


async def test_payout_succeeds_once_with_the_name_encrypted_and_never_logged(stack):
    po = await payout(stack, 12300, notify_url="http://127.0.0.1:9/hook")
    assert po["status"] in ("PROCESSING", "SUCCEEDED")
    done = await payout_final(stack, po["id"])
    assert done["status"] == "SUCCEEDED" and done["failure"] is None
    found = await stack.api("GET", f"/v1/payouts?payout_no={po['request']['payout_no']}")
    assert found.body["id"] == po["id"]
    changed = dict(po["request"], amount=12301)
    assert (await stack.api("POST", "/v1/payouts", changed)).status == 409
    t = book(stack).transfers[po["id"].replace("_", "")]
    assert t.name == PAYEE and t.amount == 12300     # decrypted at the provider: it was sent encrypted
    events = await stack.events(po["id"])
    assert [(e["type"], e["seq"]) for e in events] == [("payout.created", 1), ("payout.succeeded", 2)]
    assert events[0]["payout"]["destination"]["name"] == PAYEE[0] + "**"
    assert await stack.pool.fetchval("select count(*) from webhooks where payment_id = $1", po["id"]) == 1
    assert PAYEE not in stack.log_path.read_text(encoding="utf-8", errors="replace")


async def test_payout_failures_are_final_with_the_channel_reason(stack):
    frozen = await payout(stack, 5000, account="o_frozen_" + secrets.token_hex(4))
    assert (await payout_final(stack, frozen["id"]))["failure"]["channel_code"] == "ACCOUNT_FROZEN"
    short = await payout(stack, 5013)
    assert short["status"] == "FAILED" and short["failure"]["channel_code"] == "NOT_ENOUGH"
    wrong_name = await payout(stack, 5000, name="不符")
    assert (await payout_final(stack, wrong_name["id"]))["failure"]["channel_code"] == "NAME_NOT_CORRECT"
    too_big = await stack.api("POST", "/v1/payouts", {
        "payout_no": no("po"), "amount": 50_000_01, "currency": "CNY", "channel": CH,
        "destination": {"type": "openid", "value": "oabc"}})
    assert too_big.status == 422 and too_big.body["error"]["code"] == "AMOUNT_LIMIT_EXCEEDED"
    unsupported = await stack.api("POST", "/v1/payouts", {
        "payout_no": no("po"), "amount": 100, "currency": "CNY", "channel": CH,
        "destination": {"type": "account", "value": "6222000011112222"}})
    assert unsupported.status == 422 and unsupported.body["error"]["code"] == "UNSUPPORTED_METHOD"


@pytest.fixture
def notifications_lost(stack):
    """The channels' transfer notifications are lost: only recovery's queries can end a payout."""
    books = [stack.sims.apps[ch][BOOK_KEY] for ch in ("wechatpay", "alipay", "bankwallet")]
    for b in books:
        b.notify_transfers = False
    yield
    for b in books:
        b.notify_transfers = True


async def test_payout_with_unknown_outcome_is_finished_by_recovery_after_sigkill(stack, notifications_lost):
    # 15: WeChat takes the transfer but answers after paycore's timeout
    body = {"payout_no": no("po"), "amount": 7715, "currency": "CNY", "channel": CH,
            "destination": {"type": "openid", "value": "o" + secrets.token_hex(12), "name": PAYEE}}
    r = await stack.api("POST", "/v1/payouts", body)
    assert r.status == 201 and r.body["status"] == "PROCESSING", r.body
    stack.kill_paycore()
    try:
        row = await stack.pool.fetchrow("select status, next_check_at from payouts where id = $1", r.body["id"])
        assert row["status"] == "PROCESSING" and row["next_check_at"] is not None
    finally:
        await asyncio.to_thread(stack.start_paycore)
    done = await payout_final(stack, r.body["id"], timeout=60)
    assert done["status"] == "SUCCEEDED"
    assert [t for t in book(stack).transfers.values() if t.out_no == r.body["id"].replace("_", "")][0].state == \
        "SUCCESS"
    # 14: a system error while the transfer went through; 19: a system error and the transfer failed
    ok = await payout(stack, 7714)
    assert (await payout_final(stack, ok["id"]))["status"] == "SUCCEEDED"
    bad = await payout(stack, 7719)
    assert (await payout_final(stack, bad["id"]))["status"] == "FAILED"


async def test_payout_notification_is_verified_and_applied_once(stack):
    """WeChat notifies a transfer's final state to /notify/wechatpay/payout: a forged notice gets
    WeChat's failure answer and changes nothing; the real one ends the payout; a repeat is applied once."""
    po = await payout(stack, 6100, account="o_hold_" + secrets.token_hex(4))
    bill = po["id"].replace("_", "")

    async def waiting():
        t = book(stack).transfers.get(bill)
        return t if t is not None and t.state == "WAIT_USER_CONFIRM" else None
    t = await eventually(waiting, what="transfer waiting for the payee")
    url, headers, body = book(stack).transfer_notice(t)
    assert url == stack.base + "/notify/wechatpay/payout"
    forged = body.replace(b'"summary":"', b'"summary":"forged ')       # valid JSON, no longer WeChat's bytes
    assert forged != body
    async with stack.session.post(url, data=forged, headers=headers) as r:
        assert r.status == 500 and (await r.json())["code"] == "FAIL"
    assert (await stack.api("GET", f"/v1/payouts/{po['id']}")).body["status"] == "PROCESSING"
    applied = metric(await metrics_text(stack), "paycore_notifications_total", channel=CH, kind="payout",
                     result="applied")

    confirmed = await stack.sim(CH, "POST", f"/_sim/transfers/{bill}/confirm")
    assert confirmed["state"] == "SUCCESS"
    done = await payout_final(stack, po["id"])
    assert done["status"] == "SUCCEEDED" and done["failure"] is None
    again = await stack.sim(CH, "POST", f"/_sim/transfers/{bill}/notify")
    assert again == {"status": 200}
    events = await stack.events(po["id"])
    assert [e["type"] for e in events] == ["payout.created", "payout.succeeded"]
    async def counted():
        n = metric(await metrics_text(stack), "paycore_notifications_total", channel=CH, kind="payout",
                   result="applied")
        return n if n >= applied + 2 else None
    assert await eventually(counted, what="both notifications applied")



# -- Alipay (交易分账, 单笔转账) and the bank wallet, through the same public API ----------------------------

#: per channel: a receiver (type, account maker), a payee (type, account maker), and what the channel says
#: when a payout goes to a frozen account
OTHER = {
    "alipay": {"receiver": ("user_id", lambda: "2088" + str(secrets.randbelow(10 ** 12)).zfill(12)),
               "payee": ("account", lambda: f"p{secrets.token_hex(4)}@example.com"),
               "frozen": "PAYEE_ACCOUNT_STATUS_ERROR", "channel_refusal": "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR",
               "not_bound": "ACQ.ROYALTY_RECEIVER_INVALID"},
    "bankwallet": {"receiver": ("account", lambda: "BW" + secrets.token_hex(6)),
                   "payee": ("account", lambda: "BW" + secrets.token_hex(6)),
                   "frozen": "ACCOUNT_FROZEN", "channel_refusal": None, "not_bound": "RECEIVER_NOT_BOUND"},
}
CHANNELS = pytest.mark.parametrize("ch", list(OTHER))


async def split(stack, p: dict, lines: list[tuple[str, int]], finish: bool = False) -> dict:
    body = {"split_no": no("s"), "finish": finish,
            "receivers": [{"receiver_id": rid, "amount": amount, "description": "佣金"} for rid, amount in lines]}
    r = await stack.api("POST", f"/v1/payments/{p['id']}/splits", body)
    assert r.status == 201, r.body
    assert (await stack.api("POST", f"/v1/payments/{p['id']}/splits", body)).body["id"] == r.body["id"]
    return r.body


@CHANNELS
async def test_split_then_release_at(stack, ch):
    rtype, account = OTHER[ch]["receiver"]
    r1, r2 = await receiver(stack, rtype, account(), ch), await receiver(stack, rtype, account(), ch)
    p = await shared_payment(stack, 10000, ch)
    s = await split(stack, p, [(r1["id"], 1500), (r2["id"], 500)])
    done = await split_final(stack, s["id"])
    assert done["status"] == "SUCCEEDED", done
    assert [(x["receiver_id"], x["amount"], x["status"]) for x in done["receivers"]] == [
        (r1["id"], 1500, "SUCCEEDED"), (r2["id"], 500, "SUCCEEDED")]
    released = await split_final(stack, (await split(stack, p, [], finish=True))["id"])
    assert released["status"] == "SUCCEEDED"
    after = await stack.api("POST", f"/v1/payments/{p['id']}/splits", {
        "split_no": no("s"), "finish": False, "receivers": [{"receiver_id": r1["id"], "amount": 1, "description": "x"}]})
    assert after.status == 409 and after.body["error"]["code"] == "INVALID_STATE", after.body
    shares = [x for x in book(stack, ch).shares.values() if x.out_order_no in (s["id"], released["id"])]
    assert sorted(sum(line["amount"] for line in x.lines) for x in shares) == [0, 2000]
    assert shares[-1].finishes
    events = await stack.events(p["id"])
    assert [e["type"] for e in events][-4:] == ["split.created", "split.succeeded", "split.created", "split.succeeded"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    shown = await paycore_cli(stack, "split", "show", s["id"])
    assert shown.rc == 0, shown.err
    got = json.loads(shown.out)
    assert {k: got[k] for k in ("status", "amount", "finish", "returns")} == \
        {"status": "SUCCEEDED", "amount": 2000, "finish": False, "returns": []}
    listed = [json.loads(line) for line in (await paycore_cli(stack, "split", "list", "--payment", p["id"])).out
              .splitlines()]
    assert [x["id"] for x in listed] == [released["id"], s["id"]]
    assert (await paycore_cli(stack, "split", "show", "spl_nosuch")).rc == 1


@CHANNELS
async def test_over_split_is_refused_at(stack, ch):
    rtype, account = OTHER[ch]["receiver"]
    rcv = await receiver(stack, rtype, account(), ch)
    p = await shared_payment(stack, 10000, ch)
    over = await stack.api("POST", f"/v1/payments/{p['id']}/splits", {
        "split_no": no("s"), "finish": False, "receivers": [{"receiver_id": rcv["id"], "amount": 10001,
                                                              "description": "x"}]})
    assert over.status == 422 and over.body["error"]["code"] == "AMOUNT_LIMIT_EXCEEDED", over.body
    assert await stack.pool.fetchval("select count(*) from splits where payment_id = $1", p["id"]) == 0
    if OTHER[ch]["channel_refusal"]:
        # within the amount, above the contract's share ratio (30 %): the channel refuses, nothing moved
        refused = await split_final(stack, (await split(stack, p, [(rcv["id"], 4000)]))["id"])
        assert refused["status"] == "FAILED"
        assert refused["receivers"][0]["failure"]["channel_code"] == OTHER[ch]["channel_refusal"]
    # a receiver the channel no longer has bound
    book(stack, ch).receivers.discard((OTHER[ch]["receiver"][0] if ch == "bankwallet" else "userId",
                                       rcv["account"]))
    unbound = await split_final(stack, (await split(stack, p, [(rcv["id"], 1000)]))["id"])
    assert unbound["status"] == "FAILED"
    assert unbound["receivers"][0]["failure"]["channel_code"] == OTHER[ch]["not_bound"]
    assert sum(line["amount"] for x in book(stack, ch).shares.values() if x.order.out_trade_no == p["id"]
               for line in x.lines) == 0


@CHANNELS
async def test_payout_succeeds_and_fails_at(stack, ch):
    dtype, account = OTHER[ch]["payee"]
    po = await payout(stack, 12300, account(), channel=ch, dtype=dtype)
    done = await payout_final(stack, po["id"])
    assert done["status"] == "SUCCEEDED" and done["failure"] is None, done
    t = book(stack, ch).transfers[po["id"]]
    assert (t.amount, t.account, t.name, t.state) == (12300, po["request"]["destination"]["value"], PAYEE, "SUCCESS")
    assert [e["type"] for e in await stack.events(po["id"])] == ["payout.created", "payout.succeeded"]
    frozen = await payout(stack, 5000, "frozen" + account(), channel=ch, dtype=dtype)
    failed = await payout_final(stack, frozen["id"])
    assert failed["status"] == "FAILED" and failed["failure"]["channel_code"] == OTHER[ch]["frozen"], failed
    assert [e["type"] for e in await stack.events(frozen["id"])] == ["payout.created", "payout.failed"]
    short = await payout(stack, 5013, account(), channel=ch, dtype=dtype)
    assert (await payout_final(stack, short["id"]))["status"] == "FAILED"


async def test_payouts_with_unknown_outcome_are_finished_by_recovery_at_alipay_and_the_bank_wallet(
        stack, notifications_lost):
    # 15: the channel takes the transfer and answers after paycore's timeout; paycore is killed meanwhile
    slow = {ch: await stack.api("POST", "/v1/payouts", {
        "payout_no": no("po"), "amount": 7715, "currency": "CNY", "channel": ch,
        "destination": {"type": OTHER[ch]["payee"][0], "value": OTHER[ch]["payee"][1](), "name": PAYEE}})
        for ch in OTHER}
    for r in slow.values():
        assert r.status == 201 and r.body["status"] == "PROCESSING", r.body
    stack.kill_paycore()
    try:
        for r in slow.values():
            row = await stack.pool.fetchrow("select status, next_check_at from payouts where id = $1", r.body["id"])
            assert row["status"] == "PROCESSING" and row["next_check_at"] is not None
        # the operator asks Alipay while paycore is down: its final answer is applied at once
        got = await paycore_cli(stack, "payout", "requery", slow["alipay"].body["id"])
        assert got.rc == 0, got.err
        answer = json.loads(got.out)
        assert (answer["before"], answer["channel_status"], answer["payout"]["status"]) == \
            ("PROCESSING", "SUCCEEDED", "SUCCEEDED")
        shown = json.loads((await paycore_cli(stack, "payout", "show", slow["alipay"].body["id"])).out)
        assert shown["status"] == "SUCCEEDED" and shown["destination"]["name"] == PAYEE[0] + "**"
        listed = (await paycore_cli(stack, "payout", "list", "--status", "PROCESSING", "--limit", "500")).out
        assert slow["bankwallet"].body["id"] in listed and slow["alipay"].body["id"] not in listed
        assert PAYEE not in listed
    finally:
        await asyncio.to_thread(stack.start_paycore)
    for ch, r in slow.items():
        assert (await payout_final(stack, r.body["id"], timeout=60))["status"] == "SUCCEEDED"
        assert book(stack, ch).transfers[r.body["id"]].queries >= 1      # recovery asked
    # 14: a system error while the transfer went through; 19: a system error and the transfer failed
    for ch in OTHER:
        dtype, account = OTHER[ch]["payee"]
        ok, bad = (await payout(stack, 7714, account(), channel=ch, dtype=dtype),
                   await payout(stack, 7719, account(), channel=ch, dtype=dtype))
        assert (await payout_final(stack, ok["id"]))["status"] == "SUCCEEDED"
        assert (await payout_final(stack, bad["id"]))["status"] == "FAILED"
        assert book(stack, ch).transfers[ok["id"]].queries >= 1
