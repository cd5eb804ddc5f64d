"""Both SDKs are kept true to openapi.json: an operation, a parameter, a field,
a webhook or an error code the document publishes and an SDK lacks fails here
(Python) or in test_java_sdk.py (Java, from the description its JUnit run
writes). Extra SDK methods (planned endpoints) are allowed."""
from __future__ import annotations

import copy

from paycore_client import contract
from tests.sdk import contract_check


def test_python_sdk_covers_every_operation_field_webhook_and_error_code():
    doc = contract_check.load()
    need = contract_check.required(doc)
    assert {"createPayment", "getPayment", "findPayment", "cancelPayment", "createRefund", "getRefund"} <= set(
        need["operations"]), "the check must see the merchant operations"
    assert contract_check.missing(doc, contract.describe_all()) == []


def test_a_new_endpoint_field_or_code_in_openapi_fails_the_check():
    doc = copy.deepcopy(contract_check.load())
    doc["paths"]["/v1/widgets/{id}"] = {"get": {
        "operationId": "getWidget", "parameters": [{"name": "id", "in": "path", "required": True}],
        "responses": {"200": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"id": {"type": "string"}}}}}}}}}
    doc["paths"]["/v1/payments"]["get"]["parameters"].append({"name": "store_id", "in": "query"})
    doc["paths"]["/admin/stats"] = {"get": {"operationId": "adminStats", "responses": {}}}
    payment = doc["components"]["schemas"]["Payment"]["properties"]
    payment["tip_amount"] = {"type": "integer"}
    payment["failure"]["properties"]["hint"] = {"type": "string"}
    doc["components"]["schemas"]["Nfc"]["properties"]["pan_suffix"] = {"type": "string"}
    doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"].append("FROZEN")

    gaps = contract_check.missing(doc, contract.describe_all())
    assert "operation getWidget (GET /v1/widgets/{id}) has no SDK method" in gaps
    assert "schema getWidget has no SDK model" in gaps
    assert "operation findPayment: parameter 'store_id' has no SDK counterpart" in gaps
    assert "operation GET /admin/stats (adminStats) is neither a merchant operation (/v1/) nor in " \
           "NOT_FOR_MERCHANTS" in gaps
    assert "schema Payment: field 'tip_amount' has no SDK counterpart" in gaps
    assert "schema Payment.failure: field 'hint' has no SDK counterpart" in gaps
    assert "schema Nfc: field 'pan_suffix' has no SDK counterpart" in gaps
    assert "error code FROZEN has no typed SDK exception" in gaps


def test_the_description_comes_from_the_code_not_the_table(monkeypatch):
    """A table row naming a method the clients lack, or a parameter their
    signatures lack, is not reported as covered."""
    monkeypatch.setitem(contract.OPERATIONS, "getRefund",
                        contract.Operation("GET /v1/refunds/{id}", "fetch_refund_typo", {"id": "refund_id"}))
    monkeypatch.setitem(contract.OPERATIONS, "getPayment",
                        contract.Operation("GET /v1/payments/{id}", "get_payment", {"id": "payment_id",
                                                                                    "wait": "wait_seconds"}))
    gaps = contract_check.missing(contract_check.load(), contract.describe_all())
    assert "operation getRefund (GET /v1/refunds/{id}) has no SDK method" in gaps
    assert "operation getPayment: parameter 'wait' has no SDK counterpart" in gaps
