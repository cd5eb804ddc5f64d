"""The festival load test: POS terminals and QR customers against paycore.

    locust -f loadtest/locustfile.py --headless --host http://paycore:8080 \\
        -u 2500 -r 500 -t 5m --target-tps 5000 --merchant m_demo --secret … \\
        --sims '{"wechatpay": "http://sim:9101", …}'

(``make loadtest`` / ``python -m loadtest.run`` brings up a stack and fills
these in; loadtest/README.md says how to size it.)

One user iteration is one new payment; ``--target-tps`` new payments a
second are spread evenly over the users (each user paces itself with
``constant_pacing(users / target)``). The mix, per payment:

* 80 % POS barcode payments across the barcode channels, the code's prefix
  choosing the channel (wechat 13…, alipay 28…, unionpay 62…, jdpay 18…,
  bestpay 51…, ecny 01…, qqwallet 91…, bankwallet 88…), weighted by market
  share; after the answer, 5 % retry the same ``merchant_order_no`` with the
  same body (must be 200 with the same payment), 5 % refund part of it
  (``POST …/refunds``) and 5 % read it back by ``merchant_order_no``;
* 20 % QR payments: create (method qr) on a QR channel, the customer pays
  at the simulator (``POST /_sim/customer/pay``), whose notification
  completes the payment; the POS long-polls ``GET /v1/payments/{id}?wait=5``
  until it is final.

Amounts avoid the simulators' scenario endings 11–19 (channels/simkit.py
Scenario), so every payment is meant to succeed and any failure counts.

Pass/fail (checked on the master when the run ends; the process exits 1 on a
miss): the rate of new payments over the steady part of the run (after
``--warmup-s``) must be at least ``--target-tps`` × (1 − ``--rate-tolerance``),
the failure ratio of all requests at most ``--max-fail-ratio`` (0.1 %), and the
p99 of the POS-facing calls (payment creation, retries, refunds: not the
long-polls, which wait on purpose) at most ``--p99-ms``.
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter

from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner
from locust.stats import StatsEntry
from locust.user.wait_time import constant_pacing

try:
    from loadtest import common
except ImportError:  # run from inside loadtest/ (locust puts the locustfile's folder on sys.path)
    import common  # type: ignore[no-redef]

log = logging.getLogger("paycore.loadtest")

#: barcode channel → weight (rough market share at a Chinese POS)
BARCODE_MIX = {"wechatpay": 38, "alipay": 38, "unionpay": 8, "bankwallet": 6, "jdpay": 3, "ecny": 3, "bestpay": 2,
               "qqwallet": 2}
QR_MIX = {"wechatpay": 45, "alipay": 45, "unionpay": 5, "bankwallet": 5}
QR_SHARE = 0.20
RETRY_SHARE = REFUND_SHARE = READ_SHARE = 0.05

PAY_BARCODE = "POST /v1/payments [barcode]"
PAY_QR = "POST /v1/payments [qr]"
PAY_RETRY = "POST /v1/payments [retry]"
REFUND = "POST /v1/payments/{id}/refunds"
READ = "GET /v1/payments?merchant_order_no"
LONG_POLL = "GET /v1/payments/{id}?wait=5"
CUSTOMER_PAY = "POST /_sim/customer/pay"
#: the POS-facing calls whose p99 is checked
CHECKED = (PAY_BARCODE, PAY_QR, PAY_RETRY, REFUND, READ)
PAYMENTS = (PAY_BARCODE, PAY_QR)


@events.init_command_line_parser.add_listener
def _args(parser) -> None:
    g = parser.add_argument_group("paycore")
    g.add_argument("--target-tps", type=float, default=5000.0, help="new payments per second to reach (5000)")
    g.add_argument("--p99-ms", type=float, default=500.0, help="p99 ceiling of the POS-facing calls, ms (500)")
    g.add_argument("--max-fail-ratio", type=float, default=0.001, help="failed / all requests ceiling (0.001)")
    g.add_argument("--rate-tolerance", type=float, default=0.03, help="achieved may fall this short (0.03)")
    g.add_argument("--warmup-s", type=float, default=10.0, help="seconds left out of the rate check (10)")
    g.add_argument("--merchant", default="m_demo", env_var="PAYCORE_MERCHANT")
    g.add_argument("--secret", default="", env_var="PAYCORE_SECRET", help="the merchant's API secret")
    g.add_argument("--sims", default="{}", env_var="PAYCORE_SIMS",
                   help='JSON {"channel": "http://simulator"} for QR customers (no QR payments without)')
    g.add_argument("--qr-share", type=float, default=QR_SHARE)


class PosUser(FastHttpUser):
    """A POS terminal (and, for QR, the customer in front of it)."""

    def on_start(self) -> None:
        o = self.environment.parsed_options
        users = max(int(getattr(o, "num_users", 0) or 1), 1)
        self.pace = constant_pacing(users / float(o.target_tps))
        self.secret = o.secret.encode()
        self.merchant = o.merchant
        self.sims: dict[str, str] = json.loads(o.sims or "{}")
        self.qr_mix = {c: w for c, w in QR_MIX.items() if c in self.sims}
        self.qr_share = o.qr_share if self.qr_mix else 0.0
        self.rnd = random.Random()

    def wait_time(self) -> float:
        return self.pace(self)

    # -- plumbing ------------------------------------------------------------
    def _api(self, method: str, path: str, name: str, body: dict | None = None, expect=(200, 201)):
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        headers = common.signed_headers(self.merchant, self.secret, method, path, data)
        with self.client.request(method, path, data=data or None, headers=headers, name=name,
                                 catch_response=True) as r:
            try:
                doc = json.loads(r.content) if r.content else None
            except ValueError:
                doc = None
            if r.status_code not in expect:
                code = doc.get("error", {}).get("code") if isinstance(doc, dict) else None
                r.failure(f"HTTP {r.status_code} {code or ''}".strip())
                return None
            return doc, r

    # -- the mix -------------------------------------------------------------
    @task
    def one_payment(self) -> None:
        if self.rnd.random() < self.qr_share:
            self.qr_payment()
        else:
            self.barcode_payment()

    def barcode_payment(self) -> None:
        channel = self.rnd.choices(list(BARCODE_MIX), weights=list(BARCODE_MIX.values()))[0]
        body = {"merchant_order_no": common.order_no("pos"), "amount": common.amount(self.rnd), "currency": "CNY",
                "method": "barcode", "auth_code": common.auth_code(channel, self.rnd), "subject": "festival",
                "store_id": "s001", "terminal_id": f"t{self.rnd.randint(1, 400):03d}"}
        got = self._api("POST", "/v1/payments", PAY_BARCODE, body, expect=(201,))
        if got is None:
            return
        doc, r = got
        if doc.get("status") != "SUCCEEDED":
            r.failure(f"barcode payment {doc.get('status')}")
            return
        roll = self.rnd.random()
        if roll < RETRY_SHARE:                      # the POS did not see the answer and sends again
            again = self._api("POST", "/v1/payments", PAY_RETRY, body, expect=(200,))
            if again is not None and again[0].get("id") != doc["id"]:
                again[1].failure("a retry created a second payment")
        elif roll < RETRY_SHARE + REFUND_SHARE:     # a partial refund at the counter
            part = max(1, doc["amount"] // 3)
            ref = self._api("POST", f"/v1/payments/{doc['id']}/refunds", REFUND,
                            {"refund_no": common.order_no("r"), "amount": part, "reason": "returned item"},
                            expect=(201,))
            if ref is not None and ref[0].get("status") == "FAILED":
                ref[1].failure("refund FAILED")
        elif roll < RETRY_SHARE + REFUND_SHARE + READ_SHARE:
            self._api("GET", f"/v1/payments?merchant_order_no={body['merchant_order_no']}", READ)

    def qr_payment(self) -> None:
        channel = self.rnd.choices(list(self.qr_mix), weights=list(self.qr_mix.values()))[0]
        body = {"merchant_order_no": common.order_no("qr"), "amount": common.amount(self.rnd), "currency": "CNY",
                "method": "qr", "channel": channel, "subject": "festival"}
        got = self._api("POST", "/v1/payments", PAY_QR, body, expect=(201,))
        if got is None:
            return
        doc, r = got
        if not doc.get("qr_code"):
            r.failure("no qr_code")
            return
        # the customer scans and confirms in the app: the provider (simulator) notifies paycore
        with self.client.post(self.sims[channel] + "/_sim/customer/pay", data=json.dumps({"qr_code": doc["qr_code"]}),
                              headers={"Content-Type": "application/json"}, name=CUSTOMER_PAY,
                              catch_response=True) as c:
            if c.status_code != 200:
                c.failure(f"HTTP {c.status_code}")
                return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            polled = self._api("GET", f"/v1/payments/{doc['id']}?wait=5", LONG_POLL)
            if polled is None:
                return
            status = polled[0].get("status")
            if status == "SUCCEEDED":
                return
            if status not in ("PENDING", "PROCESSING"):
                polled[1].failure(f"QR payment ended {status}")
                return
        polled[1].failure("QR payment not final after 30 s")


# ------------------------------------------------------------------ the check
def _merged(stats, names) -> StatsEntry:
    agg = StatsEntry(stats, "checked", "")
    for (name, _method), e in stats.entries.items():
        if name in names:
            agg.extend(e)
    return agg


def verdict(environment) -> dict:
    o = environment.parsed_options
    stats = environment.stats
    per_sec: Counter[int] = Counter()
    for (name, _m), e in stats.entries.items():
        if name in PAYMENTS:
            per_sec.update(e.num_reqs_per_sec)
    seconds = sorted(per_sec)
    achieved = 0.0
    if seconds:
        # the steady part: after the warm-up, without the last (partial) second
        steady = [t for t in seconds if t >= seconds[0] + o.warmup_s and t < seconds[-1]]
        if not steady:
            steady = seconds
        achieved = sum(per_sec[t] for t in steady) / max(len(steady), 1)
    checked = _merged(stats, CHECKED)
    p99 = checked.get_response_time_percentile(0.99) if checked.num_requests else None
    total = stats.total
    fail_ratio = total.num_failures / total.num_requests if total.num_requests else 1.0
    misses = []
    if achieved < o.target_tps * (1 - o.rate_tolerance):
        misses.append(f"rate {achieved:.0f}/s < target {o.target_tps:.0f}/s")
    if fail_ratio > o.max_fail_ratio:
        misses.append(f"failure ratio {fail_ratio:.4%} > {o.max_fail_ratio:.4%}")
    if p99 is None or p99 > o.p99_ms:
        misses.append(f"p99 {p99} ms > {o.p99_ms:.0f} ms")
    return {"target_tps": o.target_tps, "achieved_tps": round(achieved, 1), "requests": total.num_requests,
            "failures": total.num_failures, "fail_ratio": round(fail_ratio, 6), "p99_ms": p99,
            "p50_ms": checked.get_response_time_percentile(0.5) if checked.num_requests else None,
            "p99_limit_ms": o.p99_ms, "passed": not misses, "misses": misses}


@events.quitting.add_listener
def _check(environment, **_kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    v = verdict(environment)
    print("PAYCORE-LOADTEST " + json.dumps(v), flush=True)
    if not v["passed"]:
        log.error("load test FAILED: %s", "; ".join(v["misses"]))
        environment.process_exit_code = 1
    else:
        log.info("load test passed: %.0f payments/s, p99 %s ms, failure ratio %.4f%%",
                 v["achieved_tps"], v["p99_ms"], v["fail_ratio"] * 100)
