"""The request signature of api.md ("Authenticating a merchant request").

Canonical string: ``METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY`` (each part
followed by a newline, the body last and raw), HMAC-SHA256 with the merchant
secret, lowercase hex. Every attempt of a request is signed afresh: a nonce is
never sent twice.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def canonical_string(method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{path_and_query}\n{timestamp}\n{nonce}\n".encode() + body


def sign(secret: str | bytes, method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, canonical_string(method, path_and_query, timestamp, nonce, body), hashlib.sha256).hexdigest()


def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def signed_headers(merchant_id: str, secret: str | bytes, method: str, path_and_query: str, body: bytes,
                   *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    return {
        "X-Paycore-Merchant": merchant_id,
        "X-Paycore-Timestamp": ts,
        "X-Paycore-Nonce": nonce,
        "X-Paycore-Signature": sign(secret, method, path_and_query, ts, nonce, body),
    }
