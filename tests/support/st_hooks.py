"""Schemathesis hooks for driving a running paycore with its own /openapi.json
(loaded by ``st run`` through SCHEMATHESIS_HOOKS=tests.support.st_hooks).

* Every request is signed as api.md says, over the exact bytes sent: a
  ``requests`` auth that runs on the prepared request (method, path and query
  as sent, body bytes), so generated bodies of any shape are signed right.
* ``paycore_error_contract``: every error of the merchant API is
  ``{"error": {"code", "message", "field"?}}`` with a code of the contract's
  table, 400 names a field, 429 carries Retry-After, no body carries a trace.
* ``paycore_no_server_error``: no 5xx but the 502/503 the contract allows
  (a refused notification is acknowledged with a 4xx in the provider's format).
* ``paycore_status_coverage``: writes which statuses each operation answered
  to $PAYCORE_ST_COVERAGE, for the test to assert reachability.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time

import requests
import schemathesis

MERCHANT = os.environ.get("PAYCORE_ST_MERCHANT", "m_test")
SECRET = os.environ.get("PAYCORE_ST_SECRET", "").encode()
CODES = {
    400: {"INVALID_REQUEST"}, 401: {"UNAUTHENTICATED"}, 404: {"NOT_FOUND"},
    409: {"IDEMPOTENCY_CONFLICT", "INVALID_STATE"}, 413: {"PAYLOAD_TOO_LARGE"},
    422: {"UNSUPPORTED_METHOD", "UNKNOWN_AUTH_CODE", "REFUND_EXCEEDS_AMOUNT", "AMOUNT_LIMIT_EXCEEDED"},
    429: {"RATE_LIMITED"}, 502: {"CHANNEL_ERROR"}, 503: {"CHANNEL_UNAVAILABLE", "UNAVAILABLE"},
}


class Signed(requests.auth.AuthBase):
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if not r.path_url.startswith("/v1/"):
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        ts, nonce = str(int(time.time())), secrets.token_hex(12)
        msg = f"{r.method}\n{r.path_url}\n{ts}\n{nonce}\n".encode() + body
        r.headers["X-Paycore-Merchant"] = MERCHANT
        r.headers["X-Paycore-Timestamp"] = ts
        r.headers["X-Paycore-Nonce"] = nonce
        r.headers["X-Paycore-Signature"] = hmac.new(SECRET, msg, hashlib.sha256).hexdigest()
        return r


@schemathesis.hook
def before_call(context, case, kwargs):
    kwargs["auth"] = Signed()


def _path(case) -> str:
    return case.operation.path


def _has_header(response, name: str) -> bool:
    return any(k.lower() == name.lower() for k in response.headers)


@schemathesis.check
def paycore_error_contract(ctx, response, case):
    text = response.content.decode("utf-8", "replace")
    if "Traceback" in text or 'File "' in text:
        raise AssertionError("a stack trace in a body")
    if not _path(case).startswith("/v1/") or response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {text[:200]!r}") from None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or set(body) != {"error"}:
        raise AssertionError(f"error body is not {{'error': {{...}}}}: {text[:200]!r}")
    if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
        raise AssertionError(f"error without code and message: {err}")
    if set(err) - {"code", "message", "field"}:
        raise AssertionError(f"unexpected keys in error: {sorted(err)}")
    if response.status_code == 405:   # a method no operation has (schemathesis tries TRACE and co.)
        if err["code"] != "METHOD_NOT_ALLOWED" or not _has_header(response, "Allow"):
            raise AssertionError(f"405 without METHOD_NOT_ALLOWED and Allow: {err}")
        return None
    allowed = CODES.get(response.status_code)
    if allowed is None or err["code"] not in allowed:
        raise AssertionError(f"{response.status_code} with code {err['code']!r} is not in the contract's table")
    if response.status_code == 400 and not isinstance(err.get("field"), str):
        raise AssertionError(f"400 without a field: {err}")
    if response.status_code == 429 and not _has_header(response, "Retry-After"):
        raise AssertionError("429 without Retry-After")
    return None


@schemathesis.check
def paycore_no_server_error(ctx, response, case):
    st = response.status_code
    if st < 500:
        return None
    if st not in (502, 503):
        raise AssertionError(f"server error {st}: {response.content[:200]!r}")
    return None


@schemathesis.check
class PaycoreStatusCoverage:
    """Which statuses each operation answered (written after every response: runs may be cut short)."""

    def __init__(self) -> None:
        self.seen: dict[str, set[int]] = {}

    def after_response(self, ctx, response, case):
        self.seen.setdefault(case.operation.label, set()).add(response.status_code)
        path = os.environ.get("PAYCORE_ST_COVERAGE")
        if path:
            with open(path, "w") as f:
                json.dump({k: sorted(v) for k, v in self.seen.items()}, f, indent=1, sort_keys=True)
        return None
