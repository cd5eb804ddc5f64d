"""What an SDK must cover of ``openapi.json``, and what one misses.

Both SDKs describe themselves in one JSON shape, produced from their real code
(Python: ``paycore_client.contract.describe_all()``; Java: the reflection in
``com.paycore.client.Contract``, written by its JUnit run):

    {"operations": {operationId: {"http": "METHOD /path", "params": [API names]}},
     "schemas": {"Name" | "Name.property": [field names]},
     "webhooks": [webhook names], "error_codes": [codes with a typed exception]}

Required: every operation under ``/v1/`` (path and query parameters), every
field of every schema its request and answers use (nested objects too, by
``Name.property`` when inline), every webhook and its body, every error code.
Any other operation must be listed in ``NOT_FOR_MERCHANTS`` with a reason, so
that a new endpoint cannot ship unnoticed. An SDK may offer more.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.json"

NOT_FOR_MERCHANTS = {
    "channelNotification": "called by the payment providers, in their own formats",
    "channelRefundNotification": "called by the payment providers, in their own formats",
    "channelPayoutNotification": "called by the payment providers, in their own formats",
    "oneCodePage": "the customer's browser page of a one-code (聚合码) sticker",
    "oneCodePay": "the customer's browser page of a one-code sticker",
    "oneCodeResult": "the customer's browser page of a one-code sticker",
    "oneCodeStatus": "the customer's browser page of a one-code sticker",
    "oneCodeAuth": "where the app's OAuth brings the customer's browser back to a one-code page",
    "oneCodeBack": "where JD's H5 cashier brings the customer's browser back to a one-code result",
    "oneCodeBackPost": "where JD's H5 cashier brings the customer's browser back to a one-code result",
    "healthz": "operations: probes, not merchants",
    "readyz": "operations: probes, not merchants",
    "metrics": "operations: Prometheus",
    "openapi": "the document itself",
    "opsListAttention": "operators' API, not merchants'",
    "opsGetAttention": "operators' API, not merchants'",
    "opsResolveAttention": "operators' API, not merchants'",
    "opsPaymentDetail": "operators' API, not merchants'",
    "opsRequeryPayment": "operators' API, not merchants'",
}

#: every per-status error schema (Error400 … Error503) is the one ``Error`` shape
_ERROR_ALIAS = re.compile(r"^Error\d{3}$")


def load(path: Path = OPENAPI) -> dict[str, Any]:
    return json.loads(path.read_text())


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ref = schema.get("$ref")
    if not ref:
        return schema, None
    name = ref.rsplit("/", 1)[1]
    return doc["components"]["schemas"][name], ("Error" if _ERROR_ALIAS.match(name) else name)


def _walk(doc: dict[str, Any], schema: dict[str, Any], key: str, out: dict[str, set[str]]) -> None:
    schema, name = _resolve(doc, schema)
    key = name or key
    for combo in ("oneOf", "anyOf", "allOf"):
        for variant in schema.get(combo, []):
            _walk(doc, variant, key, out)
    if schema.get("type") == "array" or "items" in schema:
        _walk(doc, schema.get("items", {}), key, out)
    props = schema.get("properties")
    if not props:
        return
    out.setdefault(key, set()).update(props)
    for prop, sub in props.items():
        sub_resolved, sub_name = _resolve(doc, sub)
        target = sub_resolved.get("items", sub_resolved)
        if sub_name or _resolve(doc, target)[0].get("properties") or target.get("$ref"):
            _walk(doc, sub, f"{key}.{prop}", out)


def _bodies(doc: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    rb = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if rb:
        found.append(rb)
    for resp in op.get("responses", {}).values():
        s = resp.get("content", {}).get("application/json", {}).get("schema")
        if s:
            found.append(s)
    return found


def required(doc: dict[str, Any]) -> dict[str, Any]:
    ops: dict[str, dict[str, Any]] = {}
    schemas: dict[str, set[str]] = {}
    unclassified: list[str] = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            op_id = op["operationId"]
            if not path.startswith("/v1/"):
                if op_id not in NOT_FOR_MERCHANTS:
                    unclassified.append(f"{method.upper()} {path} ({op_id})")
                continue
            params = {p["name"] for p in item.get("parameters", []) + op.get("parameters", [])
                      if p.get("in") in ("path", "query")}
            ops[op_id] = {"http": f"{method.upper()} {path}", "params": params}
            for body in _bodies(doc, op):
                _walk(doc, body, op_id, schemas)
    webhooks = set()
    for name, item in doc.get("webhooks", {}).items():
        webhooks.add(name)
        for op in item.values():
            for body in _bodies(doc, op):
                _walk(doc, body, name, schemas)
    codes = set(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    return {"operations": ops, "schemas": schemas, "webhooks": webhooks, "error_codes": codes,
            "unclassified": unclassified}


def missing(doc: dict[str, Any], sdk: dict[str, Any]) -> list[str]:
    """Everything ``doc`` publishes that ``sdk`` (its description) lacks; empty when it conforms."""
    need = required(doc)
    out = [f"operation {o} is neither a merchant operation (/v1/) nor in NOT_FOR_MERCHANTS"
           for o in need["unclassified"]]
    have_ops = sdk.get("operations", {})
    for op_id, op in sorted(need["operations"].items()):
        got = have_ops.get(op_id)
        if got is None:
            out.append(f"operation {op_id} ({op['http']}) has no SDK method")
            continue
        if got["http"] != op["http"]:
            out.append(f"operation {op_id}: SDK says {got['http']}, openapi.json {op['http']}")
        for p in sorted(op["params"] - set(got.get("params", []))):
            out.append(f"operation {op_id}: parameter {p!r} has no SDK counterpart")
    have_schemas = sdk.get("schemas", {})
    for key, fields in sorted(need["schemas"].items()):
        if key not in have_schemas:
            out.append(f"schema {key} has no SDK model")
            continue
        for f in sorted(fields - set(have_schemas[key])):
            out.append(f"schema {key}: field {f!r} has no SDK counterpart")
    for w in sorted(need["webhooks"] - set(sdk.get("webhooks", []))):
        out.append(f"webhook {w} has no SDK verifier")
    for c in sorted(need["error_codes"] - set(sdk.get("error_codes", []))):
        out.append(f"error code {c} has no typed SDK exception")
    return out
