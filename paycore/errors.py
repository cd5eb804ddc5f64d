"""The one error tree, mapped to the API's error codes in one place.

    PaycoreError                       (status, code)
    ├── InvalidRequest                  400 INVALID_REQUEST (field)
    ├── Unauthenticated                 401 UNAUTHENTICATED
    ├── NotFound                        404 NOT_FOUND
    ├── IdempotencyConflict             409 IDEMPOTENCY_CONFLICT
    ├── InvalidState                    409 INVALID_STATE
    ├── PayloadTooLarge                 413 PAYLOAD_TOO_LARGE
    ├── UnsupportedMethod               422 UNSUPPORTED_METHOD
    ├── UnknownAuthCode                 422 UNKNOWN_AUTH_CODE
    ├── RefundExceedsAmount             422 REFUND_EXCEEDS_AMOUNT
    ├── AmountLimitExceeded             422 AMOUNT_LIMIT_EXCEEDED
    ├── RateLimited                     429 RATE_LIMITED (Retry-After)
    ├── ChannelFault                    502 CHANNEL_ERROR
    ├── ChannelUnavailable              503 CHANNEL_UNAVAILABLE
    └── Unavailable                     503 UNAVAILABLE (database down: nothing accepted)

IllegalTransition is not an API error: it is a bug and surfaces as a 500
with a generic body (and a log line), never a traceback.
"""
from __future__ import annotations

import orjson


class PaycoreError(Exception):
    status = 500
    code = "INTERNAL"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> bytes:
        err: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return orjson.dumps({"error": err})

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(PaycoreError):
    status, code = 400, "INVALID_REQUEST"


class Unauthenticated(PaycoreError):
    status, code = 401, "UNAUTHENTICATED"


class Replayed(Unauthenticated):
    """A request whose nonce was already used (found where its write recorded the nonce)."""


class NotFound(PaycoreError):
    status, code = 404, "NOT_FOUND"


class IdempotencyConflict(PaycoreError):
    status, code = 409, "IDEMPOTENCY_CONFLICT"


class InvalidState(PaycoreError):
    status, code = 409, "INVALID_STATE"


class PayloadTooLarge(PaycoreError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMethod(PaycoreError):
    status, code = 422, "UNSUPPORTED_METHOD"


class UnknownAuthCode(PaycoreError):
    status, code = 422, "UNKNOWN_AUTH_CODE"


class RefundExceedsAmount(PaycoreError):
    status, code = 422, "REFUND_EXCEEDS_AMOUNT"


class AmountLimitExceeded(PaycoreError):
    status, code = 422, "AMOUNT_LIMIT_EXCEEDED"


class RateLimited(PaycoreError):
    status, code = 429, "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ChannelFault(PaycoreError):
    status, code = 502, "CHANNEL_ERROR"


class ChannelUnavailable(PaycoreError):
    status, code = 503, "CHANNEL_UNAVAILABLE"


class Unavailable(PaycoreError):
    status, code = 503, "UNAVAILABLE"


class IllegalTransition(Exception):
    """A state change the state machine forbids: a bug, never an API answer."""


class Stale(Exception):
    """The row changed under us (optimistic concurrency on seq): reload and decide again."""
