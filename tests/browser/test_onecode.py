"""One code for every app (一码通付), end to end in a real headless Chromium.

The customer's app is played by the browser: its User-Agent, its OAuth (the
simulator plays the provider's authorize page and token API), and its JS
bridge, injected into the page as the app's web view injects it
(``add_init_script``; QQ's and 云闪付's SDK scripts are served empty by the test,
the bridge being there already). The bridge calls the simulator, as the app's
native side calls the provider, through a Playwright binding, so the page's CSP
is untouched. Every step is screenshotted under test-output/onecode/.
"""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.stack import TRUSTED_PROXY

UA = {
    "wechatpay": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN",
    "alipay": "Mozilla/5.0 (Linux; U; Android 13; zh-CN; V2227A Build/TP1A.220624.014) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 UWS/3.22.2.59 Mobile Safari/537.36 "
              "NebulaSDK/1.8.100112 Nebula AliApp(AP/10.5.26.8000) AlipayClient/10.5.26.8000 Language/zh-Hans",
    "unionpay": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Mobile/15E148 (com.unionpay.chsp) (clientVersion 310) (language zh_CN) UnionPay/1.0 CloudPay",
    "qqwallet": "Mozilla/5.0 (Linux; Android 12; PEDM00 Build/SKQ1.210216.001) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Version/4.0 Chrome/98.0.4758.102 MQQBrowser/6.2 TBS/046141 Mobile Safari/537.36 "
                "V1_AND_SQ_8.9.28_3700_YYB_D QQ/8.9.28.10155 NetType/WIFI WebP/0.3.0",
    "jdpay": "jdapp;iPhone;12.3.4;;;M/5.0;appBuild/168960;jdSupportDarkMode/0;Mozilla/5.0 (iPhone; CPU iPhone OS "
             "16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148;supportJDSHWK/1;",
    "douyinpay": "Mozilla/5.0 (Linux; Android 13; V2227A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
                 "Chrome/91.0.4472.114 Mobile Safari/537.36 aweme_290100 JsSdk/1.0 NetType/WIFI "
                 "app_version/29.1.0 ByteLocale/zh-CN Region/CN BytedanceWebview/d8a21c6",
}
#: what each app pays with: jsapi where the channel has it, else h5, else the app SDK's tn
METHOD = {"wechatpay": "jsapi", "alipay": "jsapi", "unionpay": "app", "qqwallet": "jsapi", "jdpay": "h5",
          "douyinpay": "jsapi"}
APP_NAME = {"wechatpay": "微信支付", "alipay": "支付宝", "unionpay": "云闪付", "qqwallet": "QQ钱包",
            "jdpay": "京东支付", "douyinpay": "抖音支付"}
DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
           "Safari/537.36")
WINDOWS_WECHAT = ("Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.138 "
                  "Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) WindowsWechat(0x63090a13)")


def cli(stack, *args: str) -> dict:
    """``paycore …`` as an operator runs it, against the test stack's database."""
    r = subprocess.run([sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), *args],
                       env=stack.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def code(stack) -> str:
    made = cli(stack, "merchant", "code", "add", "m_test")
    assert made["url"].endswith("/c/m_test")
    return made["code"]


#: each app's bridge as its web view provides it; ``__simApp(key)`` is the app's native side
#: (a Playwright binding: the test asks the simulator to pay, or plays the customer cancelling)
BRIDGE_JS = {
    "wechatpay": """window.WeixinJSBridge = {invoke: function (name, p, cb) {
        if (name !== "getBrandWCPayRequest" || p.signType !== "RSA" || !p.paySign) { cb({err_msg: name + ":fail"}); return; }
        __simApp({prepay_id: p["package"].replace("prepay_id=", ""), app_id: p.appId}).then(function (r) {
          cb({err_msg: "get_brand_wcpay_request:" + ({paid: "ok", cancelled: "cancel"}[r] || "fail")}); }); }};""",
    "alipay": """window.AlipayJSBridge = {call: function (name, p, cb) {
        if (name !== "tradePay") { return; }
        __simApp({channel_trade_no: p.tradeNO}).then(function (r) {
          cb({resultCode: {paid: "9000", cancelled: "6001"}[r] || "4000"}); }); }};""",
    # 云闪付's app checks upsdk.config (signed over its frontToken and the page's address)
    # before ready/error, and again with every pay: the simulator plays that check
    "unionpay": """window.upsdk = (function () {
        var conf = null, verdict = null, onReady = [], onError = [];
        var page = function () { return location.href.split("#")[0]; };
        return {
          config: function (c) { conf = c;
            __simApp({action: "config", upsdk_config: c, url: page()}).then(function (r) {
              verdict = r === "ok"; (verdict ? onReady : onError).forEach(function (f) { f({errmsg: r}); }); }); },
          ready: function (f) { if (verdict === true) { f(); } else { onReady.push(f); } },
          error: function (f) { if (verdict === false) { f({}); } else { onError.push(f); } },
          pay: function (o) {
            __simApp({prepay_id: o.tn, upsdk_config: conf, url: page()}).then(function (r) {
              if (r === "paid") { o.success(); } else { o.fail({msg: r === "cancelled" ? "用户取消 cancel" : "支付失败"}); } }); }
        }; })();""",
    "qqwallet": """window.mqq = {tenpay: {pay: function (o, cb) {
        __simApp({prepay_id: o.tokenId}).then(function (r) {
          cb({resultCode: {paid: 0, cancelled: -1}[r] === undefined ? -2 : {paid: 0, cancelled: -1}[r]}); }); }}};""",
    "jdpay": "",          # no bridge: JD's H5 cashier is a page (the simulator's)
    "douyinpay": """window.ToutiaoJSBridge = {call: function (name, p, cb) {
        __simApp({prepay_id: p["package"].replace("prepay_id=", "")}).then(function (r) {
          cb({code: {paid: 0, cancelled: 4}[r] === undefined ? 2 : {paid: 0, cancelled: 4}[r]}); }); }};""",
}
SDK_SCRIPTS = ("https://open.95516.com/**", "https://open.mobile.qq.com/**")
#: the channels whose payer id comes from the app's OAuth, and the id's field
OAUTH_PAYER = {"wechatpay": "openid", "alipay": "user_id", "douyinpay": "openid"}


@contextlib.asynccontextmanager
async def phone(browser, ua: str, stack=None, app: str | None = None, action: str = "pay"):
    """A phone-sized page in a fresh browser context whose User-Agent is the app's, with the
    app's bridge when ``app`` is given; ``action`` is what the customer does in the app
    (pay, cancel, fail). ``page.app_calls`` records what the bridge was handed."""
    ctx = await browser.new_context(user_agent=ua, viewport={"width": 390, "height": 780}, is_mobile=True,
                                    has_touch=True, locale="zh-CN")
    calls: list[dict] = []
    try:
        for pattern in SDK_SCRIPTS:
            await ctx.route(pattern, lambda route: route.fulfill(status=200, content_type="application/javascript",
                                                                 body="/* the app's SDK: its bridge is injected */"))
        if app is not None:
            async def sim_app(_source, key: dict) -> str:
                if key.get("action") != "config":     # the payments the app was asked for
                    calls.append(key)
                r = await stack.sim(app, "POST", "/_sim/app/bridge", {"action": action, **key})
                return r.get("result", "error")
            await ctx.expose_binding("__simApp", sim_app)
            if BRIDGE_JS[app]:
                await ctx.add_init_script(BRIDGE_JS[app])
        page = await ctx.new_page()
        page.set_default_timeout(15_000)
        page.app_calls = calls
        yield page
    finally:
        await ctx.close()


async def type_amount(page, text: str) -> None:
    for ch in text:
        await page.click(f'#pad button[data-key="{ch}"]')


def payment_id_of(page) -> str:
    return page.url.split("/result/")[1].split("?")[0]


async def issued_payer(page, stack, app: str) -> str | None:
    """The payer id the simulated OAuth gave this browser (the app's login, on the simulator's host)."""
    cookies = await page.context.cookies(stack.sim_url(app))
    return next((c["value"] for c in cookies if c["name"] == f"sim_{app}_payer"), None)


@pytest.mark.parametrize("app,amount", [("wechatpay", "12.34"), ("alipay", "8.80"), ("unionpay", "100"),
                                        ("qqwallet", "0.50"), ("jdpay", "66.66"), ("douyinpay", "3.21")])
async def test_each_app_pays_through_its_own_channel(stack, browser, shots, code, app, amount):
    async with phone(browser, UA[app], stack, app) as page:
        nav: list[str] = []
        page.on("request", lambda r: nav.append(r.url) if r.is_navigation_request() else None)
        await page.goto(f"{stack.base}/c/{code}")
        if app in OAUTH_PAYER:     # the app's silent authorisation went by on the way to the page
            assert any(u.startswith(stack.sim_url(app)) for u in nav), nav
            assert any(u.startswith(f"{stack.base}/c/{code}/auth/{app}?") for u in nav), nav
        else:
            assert nav == [f"{stack.base}/c/{code}"], nav
        assert page.url.split("#")[0] == f"{stack.base}/c/{code}"
        assert await page.inner_text("#merchant-name") == "Test merchant"
        assert APP_NAME[app] in await page.inner_text(".head")
        assert "¥100,000.00" in await page.inner_text("#limits")
        assert await page.is_disabled("#pay")
        assert "_sim" not in await page.content()
        await page.screenshot(path=shots / f"{app}-1-page.png")

        await type_amount(page, amount)
        fen = round(float(amount) * 100)
        assert await page.inner_text("#amount-value") == amount
        await page.screenshot(path=shots / f"{app}-2-amount.png")

        await page.click("#pay")
        if app == "jdpay":        # JD: its H5 cashier, which sends the customer to paycore's callbackUrl
            await page.wait_for_url(stack.sim_url("jdpay") + "/jdpay/cashier*")
            assert await page.inner_text("#jd-amount") == f"¥{fen // 100}.{fen % 100:02d}"
            await page.screenshot(path=shots / f"{app}-3-app.png")
            await page.click("#jd-pay")
        await page.wait_for_url(re.compile(rf".*/c/{code}/result/pay_.*"))
        if app == "jdpay":        # by the uniorder's callbackUrl (paycore's /back/), not by going back
            assert any(u.startswith(f"{stack.base}/c/{code}/back/") for u in nav), nav
        if app != "jdpay":
            assert len(page.app_calls) == 1, page.app_calls
        await page.wait_for_selector('#state[data-status="SUCCEEDED"]')
        assert await page.inner_text("#title") == "支付成功"
        assert "Payment successful" in await page.inner_text("#state")
        assert await page.inner_text("#paid-amount") == f"¥{fen // 100:,}.{fen % 100:02d}"
        await page.screenshot(path=shots / f"{app}-4-result.png")
        payment_id = payment_id_of(page)
        issued = await issued_payer(page, stack, app) if app in OAUTH_PAYER else None

    # a normal payment: the merchant's API sees it, the journal has its events
    r = await stack.api("GET", f"/v1/payments/{payment_id}")
    assert r.status == 200, r.body
    p = r.body
    assert (p["status"], p["channel"], p["method"], p["amount"]) == ("SUCCEEDED", app, METHOD[app], fen)
    assert p["merchant_order_no"].startswith("oc_") and p["metadata"] == {"source": "onecode", "code": code}
    types = [e["type"] for e in await stack.events(payment_id)]
    assert types[0] == "payment.created" and types[-1] == "payment.succeeded"
    payer = await stack.pool.fetchval("select payer from payments where id = $1", payment_id)
    if app in OAUTH_PAYER:     # the payer is the one the app's OAuth named, not a pseudonym
        assert issued and payer == {OAUTH_PAYER[app]: issued}, (payer, issued)


async def test_the_customer_cancels_in_the_app_then_pays(stack, browser, shots, code):
    async with phone(browser, UA["alipay"], stack, "alipay", action="cancel") as page:
        await page.goto(f"{stack.base}/c/{code}")
        await type_amount(page, "7.20")
        await page.click("#pay")
        await page.wait_for_function("() => document.getElementById('error').dataset.outcome === 'cancel'")
        assert "已取消付款" in await page.inner_text("#error")
        assert page.url.split("#")[0] == f"{stack.base}/c/{code}" and not await page.is_disabled("#pay")
        await page.screenshot(path=shots / "cancelled-in-app.png")
        first = page.app_calls[0]["channel_trade_no"]
        p = await stack.pool.fetchrow("select id, status from payments where channel_trade_no = $1", first)
        assert p["status"] == "PENDING"          # nothing was claimed: the order is still open
    async with phone(browser, UA["alipay"], stack, "alipay") as page:
        await page.goto(f"{stack.base}/c/{code}")
        await type_amount(page, "7.20")
        await page.click("#pay")
        await page.wait_for_selector('#state[data-status="SUCCEEDED"]')


async def test_a_failure_in_the_app_is_shown_and_paycore_has_it(stack, browser, shots, code):
    async with phone(browser, UA["wechatpay"], stack, "wechatpay") as page:
        await page.goto(f"{stack.base}/c/{code}")
        await type_amount(page, "6.13")          # the simulators decline amounts ending in 13
        await page.click("#pay")
        await page.wait_for_function("() => document.getElementById('error').dataset.outcome === 'fail'")
        assert "支付未完成" in await page.inner_text("#error")
        assert "/result/" not in page.url         # no success page, no result claimed by the page
        await page.screenshot(path=shots / "failed-in-app.png")
        prepay = page.app_calls[0]["prepay_id"]
    row = await stack.pool.fetchrow("select id from payments where pay_params->>'package' = $1",
                                    f"prepay_id={prepay}")
    assert (await stack.wait_final(row["id"]))["status"] == "FAILED"     # the notification told paycore


async def test_yunshanfu_refuses_a_page_whose_upsdk_config_does_not_verify(stack, browser, shots, code):
    """paycore signs upsdk.config for the page's public address (server.public_base_url). Opened
    under another address, the signature is not for that page: 云闪付 refuses the config, the
    page says the payment did not go through, nothing is paid. The frontToken behind the
    signatures is fetched once and reused (cached until it expires)."""
    async with phone(browser, UA["unionpay"], stack, "unionpay") as page:
        await page.goto(f"{stack.base}/c/{code}")
        issued = (await stack.sim("unionpay", "GET", "/_sim/upsdk"))["front_tokens_issued"]
        assert issued >= 1
        sdk = json.loads(await page.inner_text("#cfg"))["sdk"]
        assert set(sdk) == {"appId", "timestamp", "nonceStr", "signature", "debug"} and sdk["debug"] is False
    port = stack.base.rsplit(":", 1)[1]
    async with phone(browser, UA["unionpay"], stack, "unionpay") as page:
        await page.goto(f"http://localhost:{port}/c/{code}")      # not the address paycore signed for
        await type_amount(page, "45.67")
        await page.click("#pay")
        await page.wait_for_function("() => document.getElementById('error').dataset.outcome === 'fail'")
        assert "支付未完成" in await page.inner_text("#error")
        assert "/result/" not in page.url and page.app_calls == []      # the app never took the order
        await page.screenshot(path=shots / "unionpay-config-refused.png")
    assert (await stack.sim("unionpay", "GET", "/_sim/upsdk"))["front_tokens_issued"] == issued
    p = await stack.pool.fetchrow("select id, status, pay_params from payments where channel = 'unionpay' "
                                  "and amount = 4567 order by created_at desc limit 1")
    assert p["status"] == "PENDING"
    # and the app refuses to pay that tn for a page that configured nothing or something forged
    tn = json.loads(p["pay_params"])["tn"] if isinstance(p["pay_params"], str) else p["pay_params"]["tn"]
    r = await stack.sim("unionpay", "POST", "/_sim/app/bridge", {"prepay_id": tn})
    assert r["result"] == "refused"
    forged = {**sdk, "signature": "0" * 64}
    r = await stack.sim("unionpay", "POST", "/_sim/app/bridge",
                        {"prepay_id": tn, "upsdk_config": forged, "url": f"{stack.base}/c/{code}"})
    assert r["result"] == "refused"
    assert (await stack.api("GET", f"/v1/payments/{p['id']}")).body["status"] == "PENDING"


async def test_the_app_refusing_the_oauth_code_shows_a_retry_page(stack, browser, shots, code):
    async with phone(browser, UA["wechatpay"]) as page:
        nav: list[str] = []
        page.on("request", lambda r: nav.append(r.url) if r.is_navigation_request() else None)
        await page.goto(f"{stack.base}/c/{code}")
        callback = next(u for u in nav if f"/c/{code}/auth/wechatpay?" in u)
        # the same callback again: WeChat refuses a spent code (40029), paycore shows a way to retry
        resp = await page.goto(callback)
        assert resp.status == 403
        assert await page.inner_text("#title") == "未能确认付款人，请重试"
        assert await page.get_attribute("#again", "href") == f"/c/{code}"
        await page.screenshot(path=shots / "oauth-refused.png")
        resp = await page.goto(f"{stack.base}/c/{code}/auth/wechatpay?code=x&state=1x00")   # a forged state
        assert resp.status == 403 and "过期" in await page.inner_text("#title")
        await page.click("#again")      # and trying again works: a fresh authorisation, the page
        await page.wait_for_selector("#pad")


@pytest.mark.parametrize("name,ua", [("desktop", DESKTOP), ("windows-wechat", WINDOWS_WECHAT)])
async def test_an_unsupported_browser_sees_the_apps_that_work(stack, browser, shots, code, name, ua):
    async with phone(browser, ua) as page:
        resp = await page.goto(f"{stack.base}/c/{code}")
        assert resp.status == 200
        assert "请使用以下应用扫码支付" in await page.inner_text("#title")
        listed = await page.eval_on_selector_all("#apps li", "els => els.map(e => e.dataset.channel)")
        assert listed == list(UA)
        assert await page.locator("#pay").count() == 0
        assert await page.locator("#desktop").count() == 0      # no simulator way to pay in production
        await page.screenshot(path=shots / f"unsupported-{name}.png")
        await page.goto(f"{stack.base}/c/{code}?as=alipay")      # choosing an app is development only
        assert "请使用以下应用扫码支付" in await page.inner_text("#title")


async def test_a_disabled_code_shows_a_friendly_page(stack, browser, shots):
    made = cli(stack, "merchant", "code", "add", "m_test", "--store", "closed1")
    assert made["code"] == "m_test.closed1"
    assert cli(stack, "merchant", "code", "disable", made["code"])["status"] == "disabled"
    async with phone(browser, UA["unionpay"]) as page:
        await page.goto(f"{stack.base}/c/{made['code']}")
        assert await page.inner_text("#title") == "此收款码已停用"
        assert "disabled" in await page.inner_text("#state")
        assert await page.locator("#pay").count() == 0
        await page.screenshot(path=shots / "disabled-code.png")

        resp = await page.goto(f"{stack.base}/c/no-such-code")
        assert resp.status == 404
        assert await page.inner_text("#title") == "找不到这个收款码"
        await page.screenshot(path=shots / "unknown-code.png")

        cli(stack, "merchant", "code", "enable", made["code"])
        await page.goto(f"{stack.base}/c/{made['code']}")
        assert await page.locator("#pay").count() == 1


async def test_an_edited_amount_field_is_refused(stack, browser, shots, code):
    async with phone(browser, UA["wechatpay"]) as page:
        await page.goto(f"{stack.base}/c/{code}")
        await type_amount(page, "12.34")
        for forged in ("-1.00", "1.234", "1e3", "0.00", " 5"):
            await page.evaluate("v => { document.getElementById('amount').value = v; }", forged)
            await page.click("#pay")
            await page.wait_for_function(
                "() => document.getElementById('error').textContent.includes('金额无效')")
            assert page.url.startswith(f"{stack.base}/c/{code}"), (forged, page.url)
            await page.evaluate("() => { document.getElementById('error').textContent = ''; }")
        await page.evaluate("v => { document.getElementById('amount').value = v; }", "-1.00")
        await page.click("#pay")
        await page.wait_for_function("() => document.getElementById('error').textContent.includes('金额无效')")
        await page.screenshot(path=shots / "tampered-amount-refused.png")
    r = await stack.pool.fetchval("select count(*) from payments where merchant_id = 'm_test' and amount <= 0")
    assert r == 0


async def test_a_fixed_amount_code_refuses_any_other_amount(stack, browser, shots):
    made = cli(stack, "merchant", "code", "add", "m_test", "--store", "parking", "--amount", "1500")
    async with phone(browser, UA["jdpay"]) as page:
        await page.goto(f"{stack.base}/c/{made['code']}")
        assert await page.inner_text("#amount-value") == "15.00"
        assert await page.locator("#pad").count() == 0
        await page.screenshot(path=shots / "fixed-1-page.png")
        await page.evaluate("() => { document.getElementById('amount').value = '0.01'; }")
        await page.click("#pay")
        await page.wait_for_function("() => document.getElementById('error').textContent.includes('金额无效')")
        await page.screenshot(path=shots / "fixed-2-other-amount-refused.png")
        await page.evaluate("() => { document.getElementById('amount').value = '15.00'; }")
        await page.click("#pay")
        await page.wait_for_url(stack.sim_url("jdpay") + "/jdpay/cashier*")
        assert await page.inner_text("#jd-amount") == "¥15.00"
        await page.screenshot(path=shots / "fixed-3-jd-cashier.png")


# ------------------------------------------------------------- the same checks over plain HTTP
class Client:
    """A customer's app talking HTTP directly (from its own loopback address,
    so that its rate-limit bucket is its own)."""

    def __init__(self, stack, ua: str, source: str) -> None:
        self.stack = stack
        self.ua = ua
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)),
                                             cookie_jar=aiohttp.CookieJar(unsafe=True),
                                             headers={"User-Agent": ua})

    async def open(self, code: str) -> dict:
        async with self.session.get(f"{self.stack.base}/c/{code}") as r:
            assert r.status == 200
            text = await r.text()
        m = re.search(r'<script type="application/json" id="cfg">(.*?)</script>', text)
        assert m, text[:300]
        return json.loads(m.group(1))

    async def pay(self, code: str, body: dict | bytes, csrf: str | None, **headers: str):
        h = dict(headers)
        if csrf is not None:
            h["X-CSRF-Token"] = csrf
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(f"{self.stack.base}/c/{code}/pay", data=data,
                                     headers={"Content-Type": "application/json", **h}) as r:
            return r.status, await r.json(), r.headers

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()


async def test_forged_requests_are_refused(stack, code):
    other = cli(stack, "merchant", "code", "add", "m_test", "--store", "other1")["code"]
    async with Client(stack, UA["alipay"], "127.0.0.3") as c:
        cfg = await c.open(code)
        good = {"amount": "5.00", "form": cfg["form"]}
        assert (await c.pay(code, good, None))[0] == 403                        # no CSRF token
        wrong = ("x" if cfg["csrf"][0] != "x" else "y") + cfg["csrf"][1:]
        assert (await c.pay(code, good, wrong))[0] == 403                       # a wrong one
        assert (await c.pay(code, good, cfg["csrf"], Origin="http://evil.example"))[0] == 403
        cfg_other = await c.open(other)                                           # a form of another code
        assert (await c.pay(code, {"amount": "5.00", "form": cfg_other["form"]}, cfg["csrf"]))[0] == 403
        status, body, _ = await c.pay(code, {**good, "merchant_id": "m_other"}, cfg["csrf"])
        assert (status, body["error"]["field"]) == (400, "merchant_id")           # the merchant is the code's
    # another browser (another session cookie) cannot reuse this form
    async with Client(stack, UA["alipay"], "127.0.0.3") as c2:
        cfg2 = await c2.open(code)
        assert (await c2.pay(code, good, cfg2["csrf"]))[0] == 403
    assert await stack.pool.fetchval("select count(*) from payments where merchant_order_no = $1",
                                     "oc_" + cfg["form"].split(".")[0]) == 0


async def test_forged_amounts_are_refused(stack, code):
    async with Client(stack, UA["qqwallet"], "127.0.0.5") as c:
        cfg = await c.open(code)
        for amount in (5, 5.0, "-5.00", "5.001", "5e2", "0", "0.00", "+5", "05.00", "", None, "5,00"):
            status, body, _ = await c.pay(code, {"amount": amount, "form": cfg["form"]}, cfg["csrf"])
            assert (status, body["error"]["field"]) == (400, "amount"), amount
        status, body, _ = await c.pay(code, {"amount": "100000.01", "form": cfg["form"]}, cfg["csrf"])
        assert (status, body["error"]["code"]) == (422, "AMOUNT_LIMIT_EXCEEDED")


async def test_a_replayed_form_is_the_same_payment(stack, code):
    async with Client(stack, UA["alipay"], "127.0.0.6") as c:
        cfg = await c.open(code)
        good = {"amount": "5.00", "form": cfg["form"]}
        status, first, _ = await c.pay(code, good, cfg["csrf"])
        assert status == 201 and first["status"] == "PENDING" and first["channel"] == "alipay"
        status, again, _ = await c.pay(code, good, cfg["csrf"])
        assert status == 200 and again["payment_id"] == first["payment_id"]
        status, body, _ = await c.pay(code, {**good, "amount": "0.05"}, cfg["csrf"])
        assert (status, body["error"]["code"]) == (409, "IDEMPOTENCY_CONFLICT")
        # a fresh render is a fresh form: a new payment
        cfg_next = await c.open(code)
        status, second, _ = await c.pay(code, {"amount": "5.00", "form": cfg_next["form"]}, cfg_next["csrf"])
        assert status == 201 and second["payment_id"] != first["payment_id"]
    assert await stack.pool.fetchval("select count(*) from payments where merchant_order_no = $1",
                                     "oc_" + cfg["form"].split(".")[0]) == 1


async def test_payment_attempts_are_rate_limited_per_client(stack, code):
    async with Client(stack, UA["wechatpay"], "127.0.0.2") as c:
        cfg = await c.open(code)
        statuses = []
        for _ in range(30):
            status, body, headers = await c.pay(code, {"amount": "abc", "form": cfg["form"]}, cfg["csrf"])
            statuses.append(status)
            if status == 429:
                assert body["error"]["code"] == "RATE_LIMITED" and int(headers["Retry-After"]) >= 1
        assert 400 in statuses and 429 in statuses
    # another client is not affected
    async with Client(stack, UA["wechatpay"], "127.0.0.4") as c:
        cfg = await c.open(code)
        assert (await c.pay(code, {"amount": "abc", "form": cfg["form"]}, cfg["csrf"]))[0] == 400


async def test_customers_behind_one_trusted_proxy_are_limited_separately(stack, code):
    """The load balancer (stack.TRUSTED_PROXY) connects for everyone; X-Forwarded-For names the
    customer. Each customer has their own bucket; an untrusted peer's header is ignored."""
    async def attempts(source: str, forwarded: str | None, n: int) -> list[int]:
        async with Client(stack, UA["qqwallet"], source) as c:
            hdr = {"X-Forwarded-For": forwarded} if forwarded else {}
            c.session.headers.update(hdr)
            cfg = await c.open(code)
            return [(await c.pay(code, {"amount": "abc", "form": cfg["form"]}, cfg["csrf"]))[0] for _ in range(n)]

    first = await attempts(TRUSTED_PROXY, "198.51.100.7", 30)
    assert first[:20] == [400] * 20 and 429 in first            # the burst, then the limit
    # another customer through the same proxy: a bucket of their own
    assert await attempts(TRUSTED_PROXY, "203.0.113.5", 3) == [400, 400, 400]
    # the first customer again, still limited: a hop the client wrote in front changes nothing
    assert 429 in await attempts(TRUSTED_PROXY, "203.0.113.99, 198.51.100.7", 5)
    # an untrusted peer naming the limited customer: its X-Forwarded-For is ignored
    assert await attempts("127.0.0.8", "198.51.100.7", 3) == [400, 400, 400]


async def test_production_serves_no_simulator_path(stack, code):
    """paycore's own routes, pages and scripts hold no /_sim link: the apps' steps are their
    bridges, their OAuth and JD's cashier at the providers' hosts (the simulators stand in)."""
    from paycore.config import load
    from paycore.http import onecode
    from paycore.http.app import create_app

    app = create_app(load(env={}))
    assert not [r.resource.canonical for r in app.router.routes() if "_sim" in r.resource.canonical]
    for js in sorted(Path(onecode.STATIC).glob("*.js")):
        assert "_sim" not in js.read_text(), js
    for app_name in UA:
        async with Client(stack, UA[app_name], "127.0.0.11") as c:
            async with c.session.get(f"{stack.base}/c/{code}") as r:
                assert r.status == 200 and "_sim" not in await r.text()
            cfg = await c.open(code)
            status, body, _ = await c.pay(code, {"amount": "1.00", "form": cfg["form"]}, cfg["csrf"])
            assert status == 201 and "_sim" not in json.dumps(body), body
            assert body["bridge"] == {"wechatpay": "wechat", "alipay": "alipay", "unionpay": "unionpay",
                                      "qqwallet": "qq", "jdpay": "redirect", "douyinpay": "douyin"}[app_name]


async def test_make_run_lets_a_desktop_browser_pay_in_the_simulator(stack, browser, shots, code):
    """With the simulators (make run: onecode.desktop_pay_url, as devstack sets it), a desktop
    browser chooses an app, types the amount and confirms on that simulator's page, then sees
    paycore's result. A paycore of its own here (same database and simulators) runs with that
    setting; the stack's paycore, like production, has none (the tests above)."""
    from aiohttp import web

    from devstack.stack import SIM_DESKTOP_PAY_URL, free_port
    from paycore.config import load
    from paycore.http.app import create_app

    cfg = load(stack.config_path, overrides={"onecode": {"desktop_pay_url": SIM_DESKTOP_PAY_URL}}, env=stack.env)
    runner = web.AppRunner(create_app(cfg, run_relay=False, run_recovery=False), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    dev = f"http://127.0.0.1:{port}"
    try:
        async with phone(browser, DESKTOP) as page:
            await page.goto(f"{dev}/c/{code}")
            assert "请使用以下应用扫码支付" in await page.inner_text("#title")
            offered = await page.eval_on_selector_all("#desktop a", "els => els.map(e => e.dataset.channel)")
            assert offered == list(UA)
            await page.screenshot(path=shots / "desktop-dev-1-choose.png", full_page=True)
            await page.click('#desktop a[data-channel="alipay"]')
            await type_amount(page, "9.87")
            await page.screenshot(path=shots / "desktop-dev-2-amount.png")
            await page.click("#pay")
            await page.wait_for_url(stack.sim_url("alipay") + "/_sim/app/confirm*")
            assert await page.inner_text("#sim-amount") == "¥9.87"
            await page.screenshot(path=shots / "desktop-dev-3-simulator.png")
            await page.click("#confirm")
            await page.wait_for_url(re.compile(rf"{re.escape(dev)}/c/{code}/result/pay_.*"))
            await page.wait_for_selector('#state[data-status="SUCCEEDED"]')
            await page.screenshot(path=shots / "desktop-dev-4-result.png")
            payment_id = payment_id_of(page)
    finally:
        await runner.cleanup()
    p = (await stack.api("GET", f"/v1/payments/{payment_id}")).body
    assert (p["status"], p["channel"], p["method"], p["amount"]) == ("SUCCEEDED", "alipay", "jsapi", 987)


def test_the_static_code_renders_to_print(stack, shots, tmp_path: Path):
    import segno
    png = cli(stack, "merchant", "qrcode", "m_test", "--store", "s01", "--out", str(shots / "qrcode-m_test.s01.png"))
    assert png["code"] == "m_test.s01" and png["url"] == f"{stack.base}/c/m_test.s01"
    data = (shots / "qrcode-m_test.s01.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    svg = cli(stack, "merchant", "qrcode", "m_test", "--store", "s01", "--out", str(tmp_path / "code.svg"))
    assert svg["code"] == "m_test.s01"       # the same code: created once, rendered twice
    text = (tmp_path / "code.svg").read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and png["url"] in text
    # the printed symbol is that URL's QR: its size is the size of the URL's symbol at scale 10
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == segno.make(png["url"], error="m", micro=False).symbol_size(scale=10, border=4)
    listed = subprocess.run([sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "merchant",
                             "code", "list", "m_test"], env=stack.env, capture_output=True, text=True, timeout=60)
    assert any(json.loads(line)["code"] == "m_test.s01" for line in listed.stdout.splitlines())


def test_the_code_prints_as_a_pdf_plate(stack, shots, tmp_path: Path):
    """`paycore merchant qrcode --out f.pdf`: one A6 page with the merchant's name, the fixed amount,
    the apps, and the QR of the code's URL drawn module by module."""
    import segno
    from pypdf import PdfReader
    from reportlab.lib.pagesizes import A6

    fixed = cli(stack, "merchant", "code", "add", "m_test", "--store", "p01", "--amount", "1234")
    assert fixed["amount"] == 1234 and fixed["code"] == "m_test.p01"
    out = shots / "plate-m_test.s01.pdf"
    plate = subprocess.run([sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "merchant",
                            "qrcode", "m_test", "--store", "s01", "--out", str(out)], env=stack.env,
                           capture_output=True, text=True, timeout=60)
    assert plate.returncode == 0, plate.stderr
    info = json.loads(plate.stdout)
    pdf = PdfReader(str(out))
    assert len(pdf.pages) == 1
    box = pdf.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (round(A6[0]), round(A6[1]))
    text = pdf.pages[0].extract_text()
    assert info["url"] in text and "Scan to pay" in text
    # every dark module of that URL's symbol is one filled square in the page's drawing
    content = pdf.pages[0].get_contents().get_data().decode("latin-1")
    dark = sum(sum(row) for row in segno.make(info["url"], error="m", micro=False).matrix)
    assert content.count(" re f") == dark
    assert pdf.metadata.subject == info["url"]
    # a fixed-amount code shows its amount in yuan
    fixed_pdf = tmp_path / "fixed.pdf"
    subprocess.run([sys.executable, "-m", "paycore.cli", "--config", str(stack.config_path), "merchant", "qrcode",
                    "m_test", "--store", "p01", "--out", str(fixed_pdf)], env=stack.env, check=True,
                   capture_output=True, timeout=60)
    assert "CNY 12.34" in PdfReader(str(fixed_pdf)).pages[0].extract_text()
