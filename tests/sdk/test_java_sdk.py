"""The Java SDK (sdk/java) against the real stack: its JUnit 5 suite runs with
Maven, offline from Debian's maven-repo, with the stack's URL, merchant,
secret, simulator URLs and a fault proxy that loses the answer to one create;
then what the Java code offers is compared with openapi.json.

Nothing is skipped: no Java or Maven is a failure (.ci/run installs them)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.sdk import contract_check
from tests.sdk.conftest import ROOT, lose_first_answer
from tests.support.helpers import sim_order

JAVA = ROOT / "sdk" / "java"
REPORTS = JAVA / "target" / "surefire-reports"

#: every JUnit test that must have run (a removed or skipped one fails here)
EXPECTED = {
    "PaymentsTest": {"barcodePaymentSucceeds", "userPayingThenSuccessByLongPoll", "declineIsATypedException",
                     "refundAndItsLimit", "clientErrorsAreTypedAndNotRetried", "cancelClosesAPendingPayment",
                     "lostAnswerIsRetriedWithTheSameOrderNoAndChargesOnce"},
    "WebhookTest": {"realWebhookVerifiedAndTamperedOneRefused", "keyIdsToleranceAndWrongSecrets"},
    "ExamplesTest": {"posScanPayLongPollRefund", "posDeclined", "walletInAppPayment",
                     "walletOrderNeverPaidIsCancelled"},
    "OfflineTest": {"fiveHundredsAreRetriedWithTheSameBodyAndAFreshSignature", "settlementLinesArePaginated",
                    "moneyIsPositiveWholeFen", "signatureMatchesTheCanonicalString"},
    "ContractDumpTest": {"describeTheSdk"},
}


def surefire_results() -> dict[str, dict[str, str]]:
    """{class: {test: "passed" | "failed" | "error" | "skipped"}} from the XML reports."""
    out: dict[str, dict[str, str]] = {}
    for xml in REPORTS.glob("TEST-*.xml"):
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
            out.setdefault(case.get("classname", "").rsplit(".", 1)[-1], {})[case.get("name", "")] = outcome
    return out


@pytest.mark.timeout(480)
async def test_java_sdk_suite_against_the_stack(stack, client, paycore_proxy, output_dir):
    for tool in ("java", "mvn"):
        assert shutil.which(tool), f"{tool} is missing: .ci/run installs the JDK and Maven"
    shutil.rmtree(REPORTS, ignore_errors=True)
    contract_file = JAVA / "target" / "paycore-contract.json"
    contract_file.unlink(missing_ok=True)
    fault_order = "jfault-" + secrets.token_hex(6)
    env = dict(os.environ, PAYCORE_BASE_URL=stack.base, PAYCORE_MERCHANT_ID=stack.merchant_id,
               PAYCORE_SECRET=stack.secret, PAYCORE_SIM_WECHATPAY=stack.sim_url("wechatpay"),
               PAYCORE_SIM_ALIPAY=stack.sim_url("alipay"), PAYCORE_FAULT_URL=f"http://127.0.0.1:{paycore_proxy.port}",
               PAYCORE_FAULT_ORDER_NO=fault_order)
    # the fault: the answer to the create of fault_order is lost once (see PaymentsTest)
    fault = asyncio.create_task(lose_first_answer(paycore_proxy, client, fault_order, timeout=420, poll=0.2))
    # .mvn/maven.config makes this offline, from /usr/share/maven-repo
    proc = await asyncio.create_subprocess_exec("mvn", "-B", "test", cwd=JAVA, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 420)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if not fault.done():
            fault.cancel()
    log = out.decode(errors="replace")
    (output_dir / "java-sdk-mvn.log").write_text(log)
    summary = [line for line in log.splitlines() if re.search(r"Tests run:|FAIL|BUILD|ERROR\]", line)]
    print("\n".join(summary[-30:]))
    assert proc.returncode == 0, "\n".join(log.splitlines()[-80:])

    results = surefire_results()
    for cls, tests in EXPECTED.items():
        got = results.get(cls, {})
        assert tests <= set(got), f"{cls}: did not run {sorted(tests - set(got))}"
        assert all(v == "passed" for v in got.values()), f"{cls}: {got}"

    # the retried create charged once
    assert fault.done() and not fault.cancelled(), "the fault never fired"
    created = fault.result()
    assert paycore_proxy.accepted >= 2, "the lost answer made the Java SDK connect again"
    assert (await client.find_payment(fault_order)).id == created
    assert sim_order(stack, "wechatpay", created).pay_calls == 1

    # what the Java code offers covers openapi.json
    assert contract_check.missing(contract_check.load(), json.loads(contract_file.read_text())) == []
