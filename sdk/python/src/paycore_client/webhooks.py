"""Verifying a merchant webhook (api.md "Merchant webhooks").

``X-Paycore-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``,
optionally with ``kid=<key id>`` naming which secret signed it (secret
rotation) and more than one ``v1=`` (paycore signs with the new secret, named
by ``kid``, and while the old one is in its grace period also with the old
one): any ``v1`` made with an accepted secret verifies, so a receiver that
still holds only the old secret keeps verifying until the grace ends.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Mapping

from .errors import WebhookVerificationError
from .models import Event

SIGNATURE_HEADER = "X-Paycore-Signature"
Secret = str | bytes


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if hasattr(headers, "get") else None
    if value is None:
        items = headers.items() if hasattr(headers, "items") else headers
        value = next((v for k, v in items if str(k).lower() == name.lower()), None)
    return value.decode() if isinstance(value, bytes) else value


def parse_signature(header: str) -> tuple[int, str | None, list[str]]:
    """``(t, kid or None, [v1, …])``; raises ``WebhookVerificationError`` if malformed."""
    t: int | None = None
    kid: str | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookVerificationError("malformed signature header")
        if key == "t":
            if not value.isdigit():
                raise WebhookVerificationError("malformed timestamp")
            t = int(value)
        elif key == "kid":
            kid = value
        elif key == "v1":
            macs.append(value)
    if t is None or not macs:
        raise WebhookVerificationError("signature header lacks t= or v1=")
    return t, kid, macs


def _candidates(secret: Secret | Mapping[str, Secret], kid: str | None) -> list[bytes]:
    if isinstance(secret, Mapping):
        if kid is not None and kid in secret:
            chosen = [secret[kid]]
        else:
            # no kid, or one this receiver has not deployed yet (paycore rotated the secret): during the
            # grace period the header also carries a v1 made with the previous secret, which it holds
            chosen = list(secret.values())
    else:
        chosen = [secret]
    return [s.encode() if isinstance(s, str) else s for s in chosen]


def verify_webhook(headers: Any, body: bytes, secret: Secret | Mapping[str, Secret], tolerance: float = 300.0,
                   *, now: float | None = None) -> Event:
    """Check a webhook and return its event; raise ``WebhookVerificationError`` otherwise.

    ``headers``: any mapping (or list of pairs) of the request's headers, looked
    up case-insensitively. ``body``: the raw request bytes, exactly as received.
    ``secret``: the merchant secret, or a dict ``{key id: secret}`` during a
    rotation (a ``kid=`` in the header picks one; without ``kid``, or with one
    the dict lacks, any of them may have signed). ``tolerance``: the most seconds ``t`` may be from now."""
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise WebhookVerificationError(f"no {SIGNATURE_HEADER} header")
    t, kid, macs = parse_signature(header)
    if abs((time.time() if now is None else now) - t) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance (stale or replayed)")
    signed = f"{t}.".encode() + body
    ok = False
    for key in _candidates(secret, kid):
        want = hmac.new(key, signed, hashlib.sha256).hexdigest()
        for mac in macs:   # every comparison is made, in constant time each
            ok |= hmac.compare_digest(want, mac)
    if not ok:
        raise WebhookVerificationError("signature does not match")
    try:
        return Event.from_dict(json.loads(body))
    except (ValueError, TypeError, KeyError) as e:
        raise WebhookVerificationError(f"signed body is not an event: {e}") from e


def sign_webhook(secret: Secret, body: bytes, *, timestamp: int | None = None, kid: str | None = None) -> str:
    """The header value the platform sends (for tests of a receiver)."""
    t = int(time.time()) if timestamp is None else timestamp
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t}," + (f"kid={kid}," if kid else "") + f"v1={mac}"
