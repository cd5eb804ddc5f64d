"""The dashboards and alert rules, checked by a real Prometheus.

A real ``prometheus`` (Debian's package) scrapes the running test paycore
every second and evaluates deploy/prometheus/alerts.yml while a short load
runs: payments that succeed, decline, time out and recover, QR payments paid
by the customer (channel notifications), a forged notification, refunds,
merchant webhooks (one receiver that never answers 2xx, so one is given up
on), a reconciliation, a request with a bad signature, and a channel that
starts answering HTTP 500 until its circuit breaker opens.

Then every query of every panel of deploy/grafana/dashboards/paycore.json,
and each side of every comparison in every alert expression, is evaluated
through Prometheus's HTTP API and must return data (a finite value). The
alert rules are written as "<series> <op> <threshold>" for exactly this. The
breaker that was opened must show up as a PaycoreChannelDown alert, pending
or firing. promtool checks the rules, the config and the rule unit tests.
"""
from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from devstack.stack import free_port, wait_port
from tests.support.helpers import business_today, amount, auth_code, post_notification, sim_order, sim_state
from tests.support.ops import Receiver, eventually, paycore_cli

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "paycore.json"
FAULTED = "wechatpay"   # the channel whose simulator fails during the load

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="the prometheus and promtool binaries are not installed (Debian package `prometheus`; .ci/run installs it)")


# ------------------------------------------------------------------ PromQL
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_MODIFIERS = re.compile(r"^\s*(bool\b\s*)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?")
_SET_OP = re.compile(r"(and|or|unless)\b")
_CMP_OPS = ("==", "!=", ">=", "<=", ">", "<")


def _split_top(expr: str, kind: str) -> list[str]:
    """Split ``expr`` at operators of ``kind`` ("set" or "cmp") outside (), {}, [] and strings."""
    parts, depth, start, i, quote = [], 0, 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            if kind == "set" and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:")):
                m = _SET_OP.match(expr, i)
                if m:
                    parts.append(expr[start:i])
                    start = i = m.end()
                    continue
            if kind == "cmp":
                op = next((o for o in _CMP_OPS if expr.startswith(o, i)), None)
                if op:
                    parts.append(expr[start:i])
                    start = i = i + len(op)
                    continue
        i += 1
    parts.append(expr[start:])
    return [_MODIFIERS.sub("", p, count=1).strip() for p in parts]


def operands(expr: str) -> list[str]:
    """The non-literal sides of every comparison of ``expr``, joined by and/or/unless."""
    out = []
    for part in _split_top(expr, "set"):
        for side in _split_top(part, "cmp"):
            if side and not _NUMBER.match(side):
                out.append(side)
    return out


def test_operands_of_alert_expressions():
    assert operands('max by (channel) (x{a="b"}) == 2') == ['max by (channel) (x{a="b"})']
    assert operands("a:ratio < 0.8 * b:ratio\nand on (channel) c:rate > 0.1") == \
        ["a:ratio", "0.8 * b:ratio", "c:rate"]
    assert operands('sum(rate(h{status=~"5..",x!="y"}[5m])) / sum(rate(h[5m])) > 0.02') == \
        ['sum(rate(h{status=~"5..",x!="y"}[5m])) / sum(rate(h[5m]))']
    assert operands("max(d) > 1000 and max(deriv(d[10m])) > bool 0") == ["max(d)", "max(deriv(d[10m]))"]
    assert operands("sort_desc(order_total) > 1") == ["sort_desc(order_total)"]


# ------------------------------------------------------------------ Prometheus
class Prometheus:
    def __init__(self, workdir: Path, target: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.target = target
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(json.dumps({   # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(PROM_DIR / "alerts.yml")],
            "scrape_configs": [{"job_name": "paycore", "static_configs": [{"targets": [self.target]}]}],
        }))
        log = open(self.workdir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_port("127.0.0.1", self.port, timeout=30)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def api(self, session: aiohttp.ClientSession, path: str, **params: str) -> dict:
        async with session.get(f"{self.base}/api/v1/{path}?{urlencode(params)}") as r:
            body = await r.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, session: aiohttp.ClientSession, expr: str) -> list[float]:
        data = await self.api(session, "query", query=expr)
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        return [float(s["value"][1]) for s in data["result"]]


# ------------------------------------------------------------------ the load
async def load(stack, receiver: Receiver) -> None:
    receiver.behaviour["gone"] = 500
    gone = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("alipay"),
                           notify_url=receiver.url("gone"))

    async def barcode(i: int) -> None:
        ch = ("alipay", "wechatpay")[i % 2]
        scenario = (0, 0, 0, 13, 11, 15)[i % 6]
        r = await stack.pay(amount=amount(scenario), method="barcode", auth_code=auth_code(ch),
                            notify_url=receiver.url("ok") if i % 3 == 0 else None)
        if r.status == 201 and r.body["status"] == "SUCCEEDED" and i % 4 == 0:
            await stack.api("POST", f"/v1/payments/{r.body['id']}/refunds", {"refund_no": "p1", "amount": 50})

    async def qr(i: int) -> None:
        r = await stack.pay(amount=amount(), method="qr", channel=("wechatpay", "alipay")[i % 2])
        await stack.customer_pays(r.body["channel"], qr_code=r.body["qr_code"])
        await stack.wait_final(r.body["id"])

    for round_ in range(4):
        await asyncio.gather(*(barcode(round_ * 12 + i) for i in range(12)), *(qr(round_ * 2 + i) for i in range(2)))
    # a forged notification: a real order's, with its body changed after signing
    paid = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code("alipay"))
    status, _ = await post_notification(stack, "alipay", sim_order(stack, "alipay", paid.body["id"]), tamper="body")
    assert status in (200, 400, 401, 403, 500)
    # a merchant request with a wrong signature
    bad = await stack.api("GET", f"/v1/payments/{paid.body['id']}", secret="not-the-secret")
    assert bad.status == 401
    rec = await paycore_cli(stack, "reconcile", "--channel", "alipay", "--date",
                            business_today().isoformat())
    assert rec.rc in (0, 1), rec.err

    # a channel that fails until its breaker opens: 503 CHANNEL_UNAVAILABLE
    await stack.sim(FAULTED, "POST", "/_sim/fault", {"mode": "http500"})
    statuses = []
    for _ in range(30):
        r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(FAULTED))
        statuses.append(r.status)
        if statuses.count(503) >= 5:
            break
    assert statuses.count(503) >= 5, statuses
    # keep knocking for a few scrapes, so that the 503 series is seen growing (rate > 0)
    for _ in range(10):
        await asyncio.sleep(0.3)
        await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(FAULTED))

    async def given_up():
        return await stack.pool.fetchval("select status = 'FAILED' from webhooks where payment_id = $1",
                                         gone.body["id"])
    await eventually(given_up, timeout=30, what="the webhook to be given up")


async def close_breaker(stack) -> None:
    await stack.sim(FAULTED, "POST", "/_sim/fault", {"mode": None})

    async def paid():
        r = await stack.pay(amount=amount(), method="barcode", auth_code=auth_code(FAULTED))
        return r.status == 201 and r.body["status"] == "SUCCEEDED"
    await eventually(paid, timeout=20, interval=0.5, what=f"{FAULTED} to take payments again")


@pytest.fixture(scope="module")
async def observed(stack, tmp_path_factory):
    """Prometheus scraping paycore through the load; yields (prometheus, session)."""
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{stack.port}").start()
    receiver = await Receiver().start()
    session = aiohttp.ClientSession()
    try:
        await eventually(lambda: _ready(session, prom), timeout=30, what="prometheus to be ready")
        # targets are applied a few seconds after start: the load must begin after the first scrape
        await eventually(lambda: _has(session, prom, 'up{job="paycore"} == 1'), timeout=30,
                         interval=0.25, what="the first scrape of paycore")
        await load(stack, receiver)
        # several scrapes and rule evaluations after the last of the load
        await eventually(lambda: _has(session, prom, "paycore_reconciliation_lines"), what="scraped samples")
        await asyncio.sleep(4)
        yield prom, session
    finally:
        try:
            await close_breaker(stack)
        finally:
            await session.close()
            await receiver.stop()
            prom.stop()


async def _ready(session, prom) -> bool:
    try:
        async with session.get(prom.base + "/-/ready") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def _has(session, prom, expr: str) -> bool:
    return bool(await prom.query(session, expr))


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
    return out


# ------------------------------------------------------------------ the checks
def test_promtool_accepts_the_rules_the_config_and_the_rule_tests():
    for args in (["check", "rules", str(PROM_DIR / "alerts.yml")],
                 ["check", "config", str(PROM_DIR / "prometheus.yml")],
                 ["test", "rules", str(PROM_DIR / "alerts_test.yml")]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)


async def test_every_dashboard_query_returns_data(observed):
    prom, session = observed
    queries = dashboard_queries()
    assert len(queries) >= 20
    empty = []
    for title, expr in queries:
        values = await prom.query(session, expr)
        if not any(math.isfinite(v) for v in values):
            empty.append((title, expr, values))
    assert not empty, "dashboard queries without data:\n" + "\n".join(f"  {t}: {e} -> {v}" for t, e, v in empty)
    print(f"\n{len(queries)} dashboard queries in {len({t for t, _ in queries})} panels all returned data")


async def test_every_alert_expression_is_evaluated_on_real_series(observed):
    prom, session = observed
    groups = (await prom.api(session, "rules"))["groups"]
    rules = [r for g in groups for r in g["rules"]]
    names = {r["name"] for r in rules}
    assert {"PaycoreChannelSuccessRateDrop", "PaycoreChannelDown", "PaycoreRelayLag", "PaycoreOutboxGrowing",
            "PaycoreHigh5xxRate", "PaycoreWebhookBacklog"} <= names
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    empty = []
    checked = 0
    for r in rules:
        if r["type"] == "recording":
            exprs = [r["query"]]
        else:
            await prom.query(session, r["query"])   # must evaluate; usually empty while all is well
            exprs = operands(r["query"])
            assert exprs, r["query"]
        for expr in exprs:
            checked += 1
            values = await prom.query(session, expr)
            if not any(math.isfinite(v) for v in values):
                empty.append((r["name"], expr, values))
    assert not empty, "alert operands without data:\n" + "\n".join(f"  {n}: {e} -> {v}" for n, e, v in empty)
    print(f"\n{len(rules)} rules, {checked} expressions evaluated with data")


async def test_an_open_breaker_is_a_channel_down_alert(observed):
    prom, session = observed

    async def alerting():
        alerts = (await prom.api(session, "alerts"))["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "PaycoreChannelDown"
                and a["labels"].get("channel") == FAULTED and a["state"] in ("pending", "firing")]
    (alert,) = await eventually(alerting, timeout=15, what="PaycoreChannelDown")
    assert alert["labels"]["severity"] == "page"
    ratio = await prom.query(session, "paycore:http_5xx_ratio:rate5m")
    assert ratio and ratio[0] > 0, "the 503s of the open breaker count as 5xx"
