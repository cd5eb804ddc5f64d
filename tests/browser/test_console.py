"""The operations console (/console/) and the merchant portal (/portal/) in a
real headless Chromium against the real stack: login with TOTP, lockout,
rights enforced on the server, search, a refund from the detail page that
reaches the timeline, the journal and Kafka, and the audit log of it all.
Every page is screenshotted into test-output/console/.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from paycore.merchants.users import totp
from tests.browser.conftest import fresh_dir
from tests.support.helpers import amount, auth_code, read_topic
from tests.support.ops import Receiver, eventually, paycore_cli

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def console_shots(output_dir: Path) -> Path:
    """test-output/console/: every page of the console and the portal."""
    return fresh_dir(output_dir, "console")


async def add_user(stack, name: str, role: str, merchant: str | None = None) -> bytes | None:
    """``paycore user add`` as an operator runs it; returns the TOTP key of an operator."""
    args = ["user", "add", name, "--role", role] + (["--merchant", merchant] if merchant else [])
    r = await paycore_cli(stack, *args, env_extra={"PAYCORE_USER_PASSWORD": PASSWORD})
    assert r.rc == 0, r.err
    out = json.loads(r.out.strip().splitlines()[-1])
    assert "password" not in out   # it came from the environment: never echoed
    if role == "merchant":
        assert "totp_uri" not in out
        return None
    secret = parse_qs(urlsplit(out["totp_uri"]).query)["secret"][0]
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


class People:
    admin: bytes
    finance: bytes
    support: bytes
    locked: bytes
    other_secret: str
    ours: str        # a payment of m_test
    theirs: str      # a payment of m_other
    ours_order: str


@pytest.fixture(scope="module")
async def people(stack) -> People:
    p = People()
    p.admin = await add_user(stack, "ops_admin", "admin")
    p.finance = await add_user(stack, "ops_fin", "finance")
    p.support = await add_user(stack, "ops_support", "support")
    p.locked = await add_user(stack, "ops_lock", "finance")
    await add_user(stack, "shop_test", "merchant", "m_test")
    r = await paycore_cli(stack, "merchant", "add", "m_other", "--name", "Other shop")
    assert r.rc == 0, r.err
    p.other_secret = json.loads(r.out)["secret"]
    mine = await stack.pay(amount=8800, method="barcode", auth_code=auth_code("alipay"))
    assert mine.status == 201 and mine.body["status"] == "SUCCEEDED", mine.body
    p.ours, p.ours_order = mine.body["id"], mine.body["merchant_order_no"]
    body = {"merchant_order_no": "other-" + os.urandom(4).hex(), "amount": 500, "currency": "CNY",
            "method": "barcode", "auth_code": auth_code("wechatpay")}
    theirs = await stack.api("POST", "/v1/payments", body, merchant="m_other", secret=p.other_secret)
    assert theirs.status == 201, theirs.body
    p.theirs = theirs.body["id"]
    return p


@contextlib.asynccontextmanager
async def browser_page(browser, locale: str = "en-US"):
    ctx = await browser.new_context(viewport={"width": 1360, "height": 900}, locale=locale)
    try:
        page = await ctx.new_page()
        page.set_default_timeout(15_000)
        page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        yield page
    finally:
        await ctx.close()


@pytest.fixture(scope="module")
async def admin(browser, stack, people):
    """One browser context logged in as ops_admin for the module (a TOTP step is accepted once,
    so logging in again within 30 s would need the next code)."""
    ctx = await browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    page = await ctx.new_page()
    await login(page, stack, "console", "ops_admin", people.admin)
    await page.wait_for_url(re.compile(r".*/console/$"))
    await page.close()
    yield ctx
    await ctx.close()


@contextlib.asynccontextmanager
async def admin_page(admin):
    page = await admin.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    try:
        yield page
    finally:
        await page.close()


def code_now(key: bytes) -> str:
    return totp(key, time.time())


async def login(page, stack, area: str, username: str, key: bytes | None, *, password: str = PASSWORD,
                code: str | None = None) -> None:
    await page.goto(f"{stack.base}/{area}/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    if area == "console":
        await page.fill("#code", code if code is not None else code_now(key))
    await page.click("#login")


async def audit_rows(stack, **where) -> list[dict]:
    cond = " and ".join(f"{k} = ${i + 1}" for i, k in enumerate(where))
    rows = await stack.pool.fetch(f"select * from console_audit where {cond} order by id", *where.values())
    return [dict(r) for r in rows]


async def check_overview(stack, page) -> None:
    """The overview's figures say what they are and agree with Postgres, where the Sampler reads them."""
    assert "oldest event not yet published" in await page.text_content("#relay-lag-label")
    assert await page.get_attribute("#relay-lag >> xpath=..", "title") == "paycore_outbox_oldest_age_seconds"
    assert float(await page.text_content("#relay-lag")) >= 0
    assert "events not yet published" in await page.text_content("#outbox-depth-label")
    assert int(await page.text_content("#outbox-depth")) >= 0
    row = await stack.pool.fetchrow(
        "select count(*) filter (where status = 'SUCCEEDED') as ok, count(*) filter (where status in "
        "('SUCCEEDED', 'FAILED', 'CLOSED', 'REVERSED')) as final from payments where channel = 'alipay' "
        "and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'")
    assert row["final"] >= 1   # the people fixture's barcode payment
    assert await page.text_content("#success-rates tr[data-channel=alipay] td.rate") == \
        f"{100 * row['ok'] / row['final']:.1f} %"
    assert await page.text_content("#breakers tr[data-channel=alipay] td:nth-child(2)") == "closed"
    assert int(await page.text_content("#attention-open")) == await stack.pool.fetchval(
        "select count(*) from attention_items where status = 'OPEN'")


# ------------------------------------------------------------------------ tests
async def test_operator_logs_in_with_password_and_totp(stack, browser, people, console_shots):
    async with browser_page(browser) as page:
        await page.goto(f"{stack.base}/console/payments")
        assert "/console/login" in page.url            # no session: the login page first
        await page.screenshot(path=console_shots / "01-console-login.png")
        await login(page, stack, "console", "ops_fin", people.finance, code="000000")
        assert await page.text_content("#login-error") == "Wrong username, password or code."
        await page.screenshot(path=console_shots / "02-console-login-wrong-code.png")
        await login(page, stack, "console", "ops_fin", people.finance)
        await page.wait_for_url(re.compile(r".*/console/$"))
        assert "ops_fin" in await page.text_content("#whoami")
        await page.screenshot(path=console_shots / "03-overview.png", full_page=True)
        assert int(await page.text_content("#payments-today")) >= 2
        await check_overview(stack, page)
        cookie = next(c for c in await page.context.cookies() if c["name"] == "pc_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console/"
    logins = await audit_rows(stack, actor="ops_fin", action="console.login")
    assert [r["outcome"] for r in logins][-2:] == ["failed", "ok"] and logins[-2]["reason"] == "bad_code"


async def test_repeated_failures_lock_the_account(stack, browser, people, console_shots):
    async with browser_page(browser) as page:
        for _ in range(5):
            await login(page, stack, "console", "ops_lock", people.locked, password="wrong password!")
        assert "locked" in await page.text_content("#login-error")
        await page.screenshot(path=console_shots / "04-locked.png")
        await login(page, stack, "console", "ops_lock", people.locked)   # the right password and code: still locked
        assert "locked" in await page.text_content("#login-error")
        assert "/console/login" in page.url
    rows = await audit_rows(stack, actor="ops_lock", action="console.login")
    assert [r["outcome"] for r in rows] == ["failed"] * 6 and rows[-1]["reason"] == "locked"


async def test_search_finds_by_order_no_and_status_and_exports_csv(stack, admin, people, console_shots):
    async with admin_page(admin) as page:
        await page.goto(f"{stack.base}/console/payments")
        await page.screenshot(path=console_shots / "05-payments.png", full_page=True)
        await page.fill("input[name=merchant_order_no]", people.ours_order)
        await page.click("#search-go")
        await page.wait_for_selector(f"#results a[href$='{people.ours}']")
        assert await page.locator("#results tr").count() == 2   # the header and the one payment
        await page.screenshot(path=console_shots / "06-payments-by-order-no.png", full_page=True)
        await page.goto(f"{stack.base}/console/payments?merchant_id=m_other&status=SUCCEEDED")
        text = await page.text_content("#results")
        assert people.theirs in text and people.ours not in text
        async with page.expect_download() as dl:
            await page.click("#export")
        path = await (await dl.value).path()
        csv_text = Path(path).read_text()
        assert csv_text.splitlines()[0].startswith("id,merchant_id,merchant_order_no,amount")
        assert people.theirs in csv_text and people.ours not in csv_text
        await page.goto(f"{stack.base}/console/payments?since=not-a-date")
        assert "since must be a date" in await page.text_content("#error-message")


async def test_refund_from_the_detail_page_reaches_timeline_journal_and_kafka(stack, admin, people, console_shots):
    # provider calls are recorded off the request path (paycore.core.calls): wait for the pay call's row
    await eventually(lambda: stack.pool.fetchval("select count(*) from channel_calls where payment_id = $1",
                                                 people.ours), what="the pay call recorded")
    async with admin_page(admin) as page:
        await page.goto(f"{stack.base}/console/payments/{people.ours}")
        await page.screenshot(path=console_shots / "07-payment-detail.png", full_page=True)
        pay = page.locator("#calls tr.call").filter(has=page.locator("td.flow", has_text="pay"))
        assert await pay.count() == 1   # the barcode payment's one pay call to alipay
        assert await pay.locator("td.outcome").text_content() == "ok"
        assert await pay.locator("td.http").text_content() == "200"
        await page.fill("#refund-amount", "12.50")
        await page.fill("#refund-reason", "customer returned the goods")
        await page.click("#refund-go")
        await page.wait_for_selector("#flash")
        for _ in range(50):   # the channel answers the refund at once or through recovery
            if "refund.succeeded" in await page.text_content("#timeline"):
                break
            await page.wait_for_timeout(200)
            await page.reload()
        timeline = await page.text_content("#timeline")
        assert "refund.created" in timeline and "refund.succeeded" in timeline
        assert await page.text_content("#refunded") == "12.50"
        await page.screenshot(path=console_shots / "08-payment-refunded.png", full_page=True)
    refund = await stack.pool.fetchrow("select * from refunds where payment_id = $1", people.ours)
    assert refund["amount"] == 1250 and refund["status"] == "SUCCEEDED"
    assert refund["reason"] == "customer returned the goods"
    events = await stack.pool.fetch("select event_id, type from events where payment_id = $1 and type like 'refund.%'",
                                    people.ours)
    assert {e["type"] for e in events} == {"refund.created", "refund.succeeded"}
    published = await read_topic(stack.broker.bootstrap, "paycore.payments", {e["event_id"] for e in events})
    assert {e["event_id"] for e in events} <= {m["event_id"] for m in published}
    (row,) = await audit_rows(stack, action="payment.refund", target=people.ours)
    assert row["actor"] == "ops_admin" and row["outcome"] == "ok" and row["ip"] == "127.0.0.1"
    assert row["before"]["refund_reserved"] == 0 and row["after"]["refund"]["amount"] == 1250


async def test_support_is_read_only_on_the_server(stack, browser, people, console_shots):
    async with browser_page(browser) as page:
        await login(page, stack, "console", "ops_support", people.support)
        await page.wait_for_url(re.compile(r".*/console/$"))
        await page.goto(f"{stack.base}/console/payments/{people.ours}")
        assert await page.locator("#refund-form").count() == 0
        # no button, and the server refuses the POST all the same
        csrf = await page.get_attribute("input[name=csrf]", "value")
        status = await page.evaluate("""async ([url, csrf]) => (await fetch(url, {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: new URLSearchParams({csrf, amount: '1.00', reason: 'x', refund_no: 'support1'})})).status""",
                                     [f"/console/payments/{people.ours}/refund", csrf])
        assert status == 403
        resp = await page.goto(f"{stack.base}/console/users")
        assert resp.status == 403
        await page.screenshot(path=console_shots / "09-support-forbidden.png")
    denied = await audit_rows(stack, actor="ops_support", action="access.denied")
    assert {r["target"] for r in denied} >= {f"/console/payments/{people.ours}/refund", "/console/users"}
    assert await stack.pool.fetchval("select count(*) from refunds where refund_no = 'support1'") == 0


async def test_merchant_user_sees_only_its_own_payments(stack, browser, people, console_shots):
    async with browser_page(browser, locale="zh-CN") as page:
        await page.goto(f"{stack.base}/portal/")
        await page.screenshot(path=console_shots / "20-portal-login.png")
        await login(page, stack, "portal", "shop_test", None)
        await page.wait_for_url(re.compile(r".*/portal/payments$"))
        text = await page.text_content("#results")
        assert people.ours in text and people.theirs not in text
        assert "支付订单" in await page.text_content("h1")
        await page.screenshot(path=console_shots / "21-portal-payments.png", full_page=True)
        resp = await page.goto(f"{stack.base}/portal/payments/{people.theirs}")
        assert resp.status == 404
        await page.screenshot(path=console_shots / "22-portal-other-merchant-404.png")
        resp = await page.goto(f"{stack.base}/portal/payments?merchant_id=m_other")
        assert people.theirs not in await page.text_content("#results")   # the filter cannot widen the scope
        resp = await page.goto(f"{stack.base}/console/")                      # nor can the other area
        assert "/console/login" in page.url
        for name, path in (("23-portal-payment", f"/portal/payments/{people.ours}"),
                           ("24-portal-statements", "/portal/statements"), ("25-portal-webhooks", "/portal/webhooks"),
                           ("26-portal-codes", "/portal/codes"), ("27-portal-credentials", "/portal/credentials")):
            resp = await page.goto(stack.base + path)
            assert resp.status == 200, path
            await page.screenshot(path=console_shots / f"{name}.png", full_page=True)
        # rotated with a day's overlap: the systems still signing with the old secret keep working meanwhile
        await page.select_option("#grace", "24h")
        await page.click("#rotate")
        secret = (await page.text_content("#new-secret code")).strip()
        assert "旧密钥仍然有效，截止时间" in await page.text_content("#previous-secret")
        await page.screenshot(path=console_shots / "28-portal-rotated.png")
    old, stack.secret = stack.secret, secret   # later tests of this session sign with the new secret
    assert old != secret
    assert (await stack.api("GET", f"/v1/payments/{people.ours}")).status == 200
    assert (await stack.api("GET", f"/v1/payments/{people.ours}", secret=old)).status == 200
    until = await stack.pool.fetchval("select prev_secret_expires_at from merchants where id = 'm_test'")
    assert timedelta(hours=23) < until - datetime.now(timezone.utc) <= timedelta(hours=24)
    (row,) = await audit_rows(stack, action="access.denied", target=people.theirs)
    assert row["actor"] == "shop_test" and row["merchant_id"] == "m_test" and row["outcome"] == "denied"
    (rot,) = await audit_rows(stack, action="merchant.rotate_secret", actor="shop_test")
    assert secret not in str(rot) and old not in str(rot)
    assert rot["after"]["grace_seconds"] == 86400 and rot["after"]["previous_expires_at"]


async def test_merchant_sets_its_default_webhook_endpoint_in_the_portal(stack, browser, people, console_shots):
    """The portal's webhook endpoint: validated as the API validates notify_url, audited, and used
    for a payment created without notify_url, whose delivery then shows in the portal's log."""
    receiver = await Receiver().start()
    try:
        url = receiver.url("portal-default")
        async with browser_page(browser) as page:
            await login(page, stack, "portal", "shop_test", None)
            await page.wait_for_url(re.compile(r".*/portal/payments$"))
            await page.goto(f"{stack.base}/portal/webhooks")
            await page.fill("#notify-url", "ftp://example.com/hook")
            await page.click("#endpoint-save")
            assert "notify_url must be an http or https URL" in await page.text_content("#error-message")
            assert await stack.pool.fetchval("select default_notify_url from merchants where id = 'm_test'") is None
            await page.goto(f"{stack.base}/portal/webhooks")
            await page.fill("#notify-url", url)
            await page.click("#endpoint-save")
            await page.wait_for_selector("#flash")
            assert await page.input_value("#notify-url") == url
            await asyncio.sleep(1.2)   # merchants are cached for up to 1 s in each worker (paycore.merchants.auth)
            r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("alipay"))
            assert r.status == 201 and r.body["status"] == "SUCCEEDED", r.body
            (d,) = await eventually(lambda: receiver.received("portal-default"), what="the webhook to the default")
            assert json.loads(d.body)["payment"]["id"] == r.body["id"]
            await eventually(lambda: stack.pool.fetchval("select status = 'DELIVERED' from webhooks where "
                                                         "payment_id = $1", r.body["id"]), what="delivered")
            await page.goto(f"{stack.base}/portal/webhooks?payment_id={r.body['id']}")
            assert url in await page.text_content("#endpoints")
            assert "DELIVERED" in await page.text_content("#webhook-rows")   # the delivery log
            await page.screenshot(path=console_shots / "29-portal-webhook-endpoint.png", full_page=True)
            await page.fill("#notify-url", "")   # cleared: the rest of the session's payments have no default
            await page.click("#endpoint-save")
            await page.wait_for_selector("#flash")
    finally:
        await receiver.stop()
    assert await stack.pool.fetchval("select default_notify_url from merchants where id = 'm_test'") is None
    rows = await audit_rows(stack, action="merchant.notify_url", actor="shop_test")
    assert [(r["before"]["default_notify_url"], r["after"]["default_notify_url"]) for r in rows] == [
        (None, url), (url, None)]


async def test_an_attention_item_is_resolved_through_the_engine(stack, admin, people, console_shots):
    """A query that reports another amount opens an amount_mismatch item (issue 11); the operator
    sees its evidence and resolves it from the console with a reason."""
    r = await stack.pay(amount=amount(25), method="barcode", auth_code=auth_code("alipay"))
    pid = r.body["id"]

    async def item_id():
        return await stack.pool.fetchval("select id from attention_items where payment_id = $1 and "
                                         "kind = 'amount_mismatch' and status = 'OPEN'", pid)
    iid = await eventually(item_id, what="an amount_mismatch item")
    async with admin_page(admin) as page:
        await page.goto(f"{stack.base}/console/")
        assert int(await page.text_content("#attention-open")) >= 1
        await page.goto(f"{stack.base}/console/attention")
        assert pid in await page.text_content("#attention")
        await page.screenshot(path=console_shots / "30-attention.png", full_page=True)
        await page.click(f"#attention a[href='/console/attention/{iid}']")
        assert "channel_amount" in await page.text_content("#evidence")
        await page.screenshot(path=console_shots / "31-attention-item.png", full_page=True)
        await page.select_option("#resolve-action", "acknowledge")
        await page.fill("#resolve-reason", "channel confirmed the amount by phone")
        await page.click("#resolve-go")
        await page.wait_for_selector("#flash")
        assert await page.text_content("#item-status") == "RESOLVED"
        assert await page.text_content("#resolved-by") == "ops_admin"
        await page.screenshot(path=console_shots / "32-attention-resolved.png", full_page=True)
    item = await stack.pool.fetchrow("select * from attention_items where id = $1", iid)
    assert item["status"] == "RESOLVED" and item["reason"] == "channel confirmed the amount by phone"
    (row,) = await audit_rows(stack, action="attention.resolve", target=str(iid))
    assert row["actor"] == "ops_admin" and row["before"]["status"] == "OPEN" and row["outcome"] == "ok"


async def test_every_operator_page_and_the_audit_log(stack, admin, people, console_shots):
    async with admin_page(admin) as page:
        await page.goto(f"{stack.base}/console/?lang=zh")
        assert "概览" in await page.text_content("h1")
        await page.screenshot(path=console_shots / "10-overview-zh.png", full_page=True)
        await page.goto(f"{stack.base}/console/?lang=en")
        for name, path in (("11-reconciliation", "/console/reconciliation"), ("12-merchants", "/console/merchants"),
                           ("13-merchant", "/console/merchants/m_test"), ("14-codes", "/console/codes"),
                           ("15-webhooks", "/console/webhooks"), ("16-channels", "/console/channels"),
                           ("17-users", "/console/users")):
            resp = await page.goto(stack.base + path)
            assert resp.status == 200, path
            await page.screenshot(path=console_shots / f"{name}.png", full_page=True)
        # a merchant change through the page, with its before and after in the audit
        await page.goto(f"{stack.base}/console/merchants/m_other")
        await page.fill("#max-amount", "90000")
        await page.click("#merchant-save")
        await page.wait_for_selector("#flash")
        # the operator rotates m_other's secret at once (grace 0, the default): only the new one works
        await page.click("#rotate")
        fresh = (await page.text_content("#new-secret code")).strip()
        assert await page.locator("#previous-secret").count() == 0
    old, people.other_secret = people.other_secret, fresh
    assert (await stack.api("GET", f"/v1/payments/{people.theirs}", merchant="m_other", secret=fresh)).status == 200
    refused = await stack.api("GET", f"/v1/payments/{people.theirs}", merchant="m_other", secret=old)
    assert refused.status == 401 and refused.error == "UNAUTHENTICATED"
    (rot,) = await audit_rows(stack, action="merchant.rotate_secret", target="m_other")
    assert rot["after"]["grace_seconds"] == 0 and rot["after"]["previous_expires_at"] is None
    async with admin_page(admin) as page:
        await page.goto(f"{stack.base}/console/audit")
        await page.screenshot(path=console_shots / "18-audit.png", full_page=True)
        await page.fill("#audit-action", "payment.")
        await page.click("#audit-go")
        await page.wait_for_url(re.compile(r".*action=payment.*"))
        actions = await page.locator("#audit td.action").all_text_contents()
        assert actions and set(actions) == {"payment.refund"}
        await page.goto(f"{stack.base}/console/audit")
        everything = await page.text_content("#audit")
        for action in ("console.login", "portal.login", "payment.refund", "access.denied", "merchant.update",
                       "attention.resolve",
                       "merchant.rotate_secret", "user.create"):
            assert action in everything, action
        await page.screenshot(path=console_shots / "19-audit-filtered.png", full_page=True)
    (upd,) = await audit_rows(stack, action="merchant.update", target="m_other")
    assert upd["before"]["max_amount"] is None and upd["after"]["max_amount"] == 90000
    with pytest.raises(Exception, match="append-only"):
        await stack.pool.execute("delete from console_audit where id = $1", upd["id"])
    with pytest.raises(Exception, match="append-only"):
        await stack.pool.execute("update console_audit set actor = 'someone' where id = $1", upd["id"])


async def _final(stack, path: str, **auth) -> dict:
    async def done():
        r = await stack.api("GET", path, **auth)
        assert r.status == 200, r.body
        return r.body if r.body["status"] != "PROCESSING" else None
    return await eventually(done, timeout=30, what=f"{path} final")


async def _payout(stack, amount: int, account: str, **auth) -> dict:
    r = await stack.api("POST", "/v1/payouts", {
        "payout_no": "po-" + os.urandom(4).hex(), "amount": amount, "currency": "CNY", "channel": "wechatpay",
        "destination": {"type": "openid", "value": account, "name": "张三丰"}}, **auth)
    assert r.status == 201, r.body
    return await _final(stack, f"/v1/payouts/{r.body['id']}", **auth)


async def test_splits_on_the_payment_page_and_payouts_in_both_areas(stack, browser, admin, people, console_shots):
    """Issue 16: a payment's splits with each receiver's status on its detail page; payouts searched by
    merchant and status, and their detail, for operators; a merchant user sees its own only."""
    rcv = await stack.api("POST", "/v1/receivers", {"receiver_no": "rcv-" + os.urandom(4).hex(), "channel": "wechatpay",
                                                    "type": "openid", "account": "o" + os.urandom(12).hex()})
    assert rcv.status == 201, rcv.body
    r = await stack.pay(amount=10000, method="qr", channel="wechatpay", profit_sharing=True)
    assert r.status == 201, r.body
    await stack.customer_pays("wechatpay", out_trade_no=r.body["id"])
    assert (await stack.wait_final(r.body["id"]))["status"] == "SUCCEEDED"
    pid = r.body["id"]
    s = await stack.api("POST", f"/v1/payments/{pid}/splits", {"split_no": "s-" + os.urandom(4).hex(), "finish": False,
                        "receivers": [{"receiver_id": rcv.body["id"], "amount": 2500, "description": "平台佣金"}]})
    assert s.status == 201, s.body
    assert (await _final(stack, f"/v1/splits/{s.body['id']}"))["status"] == "SUCCEEDED"
    ok = await _payout(stack, 3000, "o" + os.urandom(12).hex())
    bad = await _payout(stack, 4000, "o_frozen_" + os.urandom(4).hex())
    theirs = await _payout(stack, 500, "o" + os.urandom(12).hex(), merchant="m_other", secret=people.other_secret)
    assert (ok["status"], bad["status"], theirs["status"]) == ("SUCCEEDED", "FAILED", "SUCCEEDED")

    async with admin_page(admin) as page:
        await page.goto(f"{stack.base}/console/payments/{pid}")
        splits = await page.text_content("#splits")
        assert s.body["id"] in splits and rcv.body["receiver_no"] in splits and "25.00" in splits
        assert await page.text_content(f"tr[data-split='{s.body['id']}'] .receiver-status") == "ACTIVE"
        await page.screenshot(path=console_shots / "40-payment-splits.png", full_page=True)
        await page.goto(f"{stack.base}/console/payouts")
        await page.fill("#payout-merchant", "m_test")
        await page.select_option("#payout-status", "FAILED")
        await page.click("#payout-search")
        await page.wait_for_url(re.compile(r".*status=FAILED.*"))
        listed = await page.text_content("#payouts")
        assert bad["id"] in listed and ok["id"] not in listed and theirs["id"] not in listed
        await page.screenshot(path=console_shots / "41-payouts-failed.png", full_page=True)
        await page.click(f"a[href='/console/payouts/{bad['id']}']")
        assert await page.text_content("#payout-status") == "FAILED"
        assert "PAYOUT_FAILED" in await page.text_content("#payout-failure")
        assert "payout.failed" in await page.text_content("#timeline")
        assert "张三丰" not in await page.content()     # the payee's name is shown masked only
        await page.screenshot(path=console_shots / "42-payout-detail.png", full_page=True)

    async with browser_page(browser, locale="zh-CN") as page:
        await login(page, stack, "portal", "shop_test", None)
        await page.wait_for_url(re.compile(r".*/portal/payments$"))
        await page.goto(f"{stack.base}/portal/payouts?merchant_id=m_other")   # the filter cannot widen the scope
        listed = await page.text_content("#payouts")
        assert ok["id"] in listed and bad["id"] in listed and theirs["id"] not in listed
        await page.screenshot(path=console_shots / "43-portal-payouts.png", full_page=True)
        assert (await page.goto(f"{stack.base}/portal/payouts/{theirs['id']}")).status == 404
        assert (await page.goto(f"{stack.base}/portal/payouts/{ok['id']}")).status == 200
        assert "payout.succeeded" in await page.text_content("#timeline")
        await page.goto(f"{stack.base}/portal/payments/{pid}")
        assert s.body["id"] in await page.text_content("#splits")
        await page.screenshot(path=console_shots / "44-portal-payment-splits.png", full_page=True)
    (denied,) = await audit_rows(stack, action="access.denied", target=theirs["id"])
    assert denied["actor"] == "shop_test" and denied["outcome"] == "denied"
