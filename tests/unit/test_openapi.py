"""The published OpenAPI document: committed as generated, valid OpenAPI 3.1,
and describing what the code does (every route, every field of the answers,
every error code)."""
from __future__ import annotations

import inspect
import json

from openapi_spec_validator import validate

from paycore import errors
from paycore.http import openapi
from paycore.core.models import Payment, Refund


def test_committed_documents_are_what_the_generator_writes():
    generated = openapi.render()
    for path in (openapi.STATIC_FILE, openapi.ROOT_FILE):
        assert path.read_bytes() == generated, f"{path} is stale: run `make openapi`"


def test_document_is_valid_openapi_3_1():
    doc = json.loads(openapi.render())
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_of_the_app_is_documented():
    from paycore.http.app import create_app
    from paycore.config import Config

    app = create_app(Config())
    # the console and the portal are HTML pages for people behind a login (docs/console.md), not an API
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.method not in ("HEAD", "*") and r.resource is not None
              and not r.resource.canonical.startswith(("/console", "/portal"))}
    documented = {(m, p) for p, ops in openapi.build()["paths"].items() for m in ops}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented paths the app does not serve"


def _payment_like(name: str) -> set[str]:
    return set(openapi.build()["components"]["schemas"][name]["properties"])


def test_answer_schemas_list_exactly_the_fields_the_models_send():
    from datetime import datetime, timezone

    from channels.base import Method
    from paycore.core.models import RefundState, Status

    t = datetime.now(timezone.utc)
    p = Payment(id="pay_x", merchant_id="m", merchant_order_no="o", fingerprint="f", amount=1, currency="CNY",
                method=Method.QR, channel="alipay", status=Status.PENDING, expire_at=t, created_at=t, updated_at=t)
    r = Refund(id="rfd_x", payment_id="pay_x", merchant_id="m", refund_no="r", fingerprint="f", amount=1,
               status=RefundState.PROCESSING, created_at=t, updated_at=t)
    assert set(p.to_api()) == _payment_like("Payment")
    assert set(r.to_api()) == _payment_like("Refund")


def test_error_schema_knows_every_code_of_the_error_tree():
    doc = openapi.build()
    enum = set(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.PaycoreError) and cls is not errors.PaycoreError:
            assert cls.code in enum, cls
            assert cls.code in openapi.ERROR_CODES[cls.status], cls


def test_every_signed_operation_documents_auth_and_its_errors():
    doc = openapi.build()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not path.startswith("/v1/"):
                continue
            assert op["security"] == [{"merchant": [], "timestamp": [], "nonce": [], "signature": []}]
            for status in ("401", "413", "429", "503"):
                assert status in op["responses"], (method, path, status)
            assert "Retry-After" in op["responses"]["429"]["headers"]
    schemes = doc["components"]["securitySchemes"]
    names = {s["name"] for s in schemes.values() if s["type"] == "apiKey"}
    assert names == {"X-Paycore-Merchant", "X-Paycore-Timestamp", "X-Paycore-Nonce", "X-Paycore-Signature"}
    # the operators' API has its own credential, never the merchant signature
    assert schemes["operator"] == {"type": "http", "scheme": "bearer", "description": schemes["operator"]["description"]}
    for path, ops in doc["paths"].items():
        if path.startswith("/ops/"):
            for op in ops.values():
                assert op["security"] == [{"operator": []}] and "401" in op["responses"], path
